//! From what a collector returns to what handlers receive: Diamond's metric
//! paths, the host's checks on untrusted guest output, and the filters.

mod batch;
mod chunk;
mod filter;
mod name;
mod path;
mod publish;
pub mod series;

pub use batch::{Batch, Slice};
pub(crate) use chunk::Columns;
pub use chunk::{Chunk, Published, Source, MAX_LINES};
pub use filter::Filter;
pub use name::{check_name, check_name_bytes, Rejection, MAX_NAME, MAX_PRECISION};
pub(crate) use path::push_path;
pub use path::PathBuilder;
pub use publish::{count, set_of, truncate, Checked, Publication};
