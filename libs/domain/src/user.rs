//! Users and the shapes in which the API shows them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;
use uuid::Uuid;

/// Stored as text; a value the database holds that is not a role fails to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Who may see a user's library (`GET /users/{id}/library`) and their book activities in a
/// feed. Stored as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Nobody else (the default).
    #[default]
    Private,
    /// The user's followers.
    Followers,
    /// Anyone signed in.
    Public,
}

impl Visibility {
    pub const ALL: &'static str = "private, followers, public";

    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Followers => "followers",
            Visibility::Public => "public",
        }
    }

    pub fn parse(s: &str) -> Option<Visibility> {
        match s {
            "private" => Some(Visibility::Private),
            "followers" => Some(Visibility::Followers),
            "public" => Some(Visibility::Public),
            _ => None,
        }
    }

    /// Whether a reader may see the library of its owner: the one rule of who sees what,
    /// for shelves and for book activities in feeds alike.
    pub fn lets_see(self, is_owner: bool, follows_owner: bool) -> bool {
        is_owner
            || match self {
                Visibility::Public => true,
                Visibility::Followers => follows_owner,
                Visibility::Private => false,
            }
    }
}

/// A user as stored, without the password hash.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub bio: Option<String>,
    pub role: Role,
    pub library_visibility: Visibility,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// RFC 3339 in UTC with a `Z`, whole seconds, as the contract shows.
pub fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// The full profile: `GET /users/me`, the auth responses, and the admin's user list.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub id: Uuid,
    #[schema(format = "email")]
    pub email: String,
    pub display_name: String,
    pub bio: Option<String>,
    pub role: Role,
    pub library_visibility: Visibility,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

/// What anyone signed in may see of another user (in follower lists).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicProfile {
    pub id: Uuid,
    pub display_name: String,
    pub bio: Option<String>,
}

/// `GET /users/{id}`: the public profile with its follow counts, as the caller sees it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserCard {
    pub id: Uuid,
    pub display_name: String,
    pub bio: Option<String>,
    pub followers: i64,
    pub following: i64,
    /// Whether the caller follows this user.
    pub followed_by_me: bool,
}

impl From<User> for Profile {
    fn from(u: User) -> Self {
        Profile {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            bio: u.bio,
            role: u.role,
            library_visibility: u.library_visibility,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

impl From<User> for PublicProfile {
    fn from(u: User) -> Self {
        PublicProfile {
            id: u.id,
            display_name: u.display_name,
            bio: u.bio,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_sees_a_library() {
        use Visibility::*;
        for v in [Private, Followers, Public] {
            assert!(v.lets_see(true, false), "the owner always");
            assert_eq!(Visibility::parse(v.as_str()), Some(v));
        }
        assert!(!Private.lets_see(false, true));
        assert!(Followers.lets_see(false, true) && !Followers.lets_see(false, false));
        assert!(Public.lets_see(false, false));
        assert_eq!(Visibility::parse("PUBLIC"), None);
        assert_eq!(Visibility::default(), Private);
    }
}
