//! Bookshelf's domain: types, validation rules and pagination cursors. No I/O lives here,
//! so everything in this crate is testable with plain unit tests.

pub mod activity;
pub mod book;
pub mod change;
pub mod cursor;
pub mod destination;
pub mod import;
pub mod input;
pub mod isbn;
pub mod library;
pub mod order;
pub mod reading;
pub mod user;
pub mod validation;
pub mod webhook;

#[cfg(feature = "sqlx")]
mod text_column;

pub use activity::{Activity, ActivityMessage, ActivityType, FollowerCursor, NewActivity, PersonRef};
pub use book::{Book, BookInput, BookPatch, InventoryInput, NewBook};
pub use cursor::{Cursor, CursorError, NumberCursor, PageParams, SearchCursor};
pub use input::Input;
pub use library::{
    BookSummary, EntryChange, EntryInput, ExportBook, ExportEntry, LibraryEntry, ReadingStatus,
};
pub use order::{Order, OrderInput, OrderItem, OrderLine, OrderMessage, OrderStatus};
pub use reading::{Goal, Read, ReadingSession, Stats};
pub use user::{Profile, PublicProfile, Role, User, UserCard, Visibility};
pub use validation::{field, rule, AllValid, Checked, FieldError};
