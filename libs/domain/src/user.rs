//! Users and the shapes in which the API shows them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;
use uuid::Uuid;

/// Stored as text; a value the database holds that is not a role fails to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(
    feature = "sqlx",
    derive(sqlx::Type),
    sqlx(type_name = "text", rename_all = "lowercase")
)]
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

/// A user as stored, without the password hash.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub bio: Option<String>,
    pub role: Role,
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
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

/// What anyone signed in may see of another user.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicProfile {
    pub id: Uuid,
    pub display_name: String,
    pub bio: Option<String>,
}

impl From<User> for Profile {
    fn from(u: User) -> Self {
        Profile {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            bio: u.bio,
            role: u.role,
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
