//! The enums stored as text columns declare PostgreSQL's built-in `text` type (a known OID).
//! sqlx's derive with `type_name = "text"` declares the type by name instead, and looks its
//! OID up with a named statement on each new connection, which a transaction-pooling proxy
//! would leave on whichever server connection ran it.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

use crate::{ActivityType, OrderStatus, ReadingStatus, Role, Visibility};

macro_rules! text_column {
    ($($ty:ty),*) => {$(
        impl Type<Postgres> for $ty {
            fn type_info() -> PgTypeInfo {
                <&str as Type<Postgres>>::type_info()
            }

            fn compatible(ty: &PgTypeInfo) -> bool {
                <&str as Type<Postgres>>::compatible(ty)
            }
        }

        impl Encode<'_, Postgres> for $ty {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> Decode<'r, Postgres> for $ty {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<Postgres>>::decode(value)?;
                <$ty>::parse(text)
                    .ok_or_else(|| format!("{text:?} is not a {}", stringify!($ty)).into())
            }
        }
    )*};
}

text_column!(ActivityType, OrderStatus, ReadingStatus, Role, Visibility);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_columns_declare_the_builtin_text_type_not_a_name_to_look_up() {
        let text = <&str as Type<Postgres>>::type_info();
        for declared in [
            Role::type_info(),
            Visibility::type_info(),
            ActivityType::type_info(),
            OrderStatus::type_info(),
            ReadingStatus::type_info(),
        ] {
            assert_eq!(declared, text);
            // By name, sqlx would report a declared type; the built-in one has its OID.
            assert!(
                !format!("{declared:?}").contains("DeclareWithName"),
                "{declared:?}"
            );
        }
        for t in [
            ActivityType::Shelved,
            ActivityType::FinishedReading,
            ActivityType::Followed,
        ] {
            assert_eq!(ActivityType::parse(t.as_str()), Some(t));
        }
        assert_eq!(ActivityType::parse("Shelved"), None);
    }
}
