//! Bookshelf's domain: types, validation rules and pagination cursors. No I/O lives here,
//! so everything in this crate is testable with plain unit tests.

pub mod cursor;
pub mod input;
pub mod user;
pub mod validation;

pub use cursor::{Cursor, CursorError, PageParams};
pub use input::Input;
pub use user::{Profile, PublicProfile, Role, User};
pub use validation::{FieldError, Validator};
