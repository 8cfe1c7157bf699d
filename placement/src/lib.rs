//! # cairn-placement
//!
//! The placement engine's proving ground (design §4): a trace-driven simulator of the fast
//! tier, and the cache policies it is judged against. Pure compute: traces come in through
//! any `std::io::Read`.
//!
//! ```
//! use cairn_placement::{policy::Lru, sim::simulate, trace::Request};
//!
//! let reqs = [(1, 10), (2, 10), (1, 10), (3, 10), (2, 10)]
//!     .map(|(id, size)| Request { time: 0, id, size, next: -1 });
//! let m = simulate(reqs.iter().copied(), &mut Lru::new(20), 0);
//! assert_eq!((m.requests, m.misses), (5, 4));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod arc;
pub mod engine;
pub mod fixed;
pub mod gbdt;
pub mod lfu;
pub mod lhd;
pub mod policy;
pub mod prefetch;
pub mod registry;
pub mod sampled;
pub mod sieve;
pub mod sim;
pub mod trace;
