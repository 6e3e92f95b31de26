//! The bottom floor: small, dependency-free pieces every other module may use and which use no
//! other module of the crate. It owns the wall clock ([`clock`]), Go-compatible number and string
//! formatting ([`gofmt`]), the one [`Signal`] type, HTML escaping for hand-written pages
//! ([`html`]), request-path normalisation ([`urlpath`]), query-string parameters ([`params`]), bounded regular expressions ([`regex`]) and
//! directory sizes ([`files`]). It owns no state, no I/O beyond `files`, and no protocol.

pub mod clock;
pub mod files;
pub mod gofmt;
pub mod html;
pub mod params;
pub mod regex;
pub mod signal;
pub mod units;
pub mod urlpath;

pub use signal::Signal;
