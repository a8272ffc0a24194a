//! HTTP/1.1, pure: bytes in, values out; values in, bytes out. Nothing here touches a socket,
//! a scheduler or the server: `conn` owns the socket and drives these functions.

pub(crate) mod bytes;
pub mod chunked;
pub mod conditional;
pub mod date;
pub mod encode;
mod extract;
pub(crate) mod header;
mod into_response;
pub mod params;
pub mod parse;
pub mod range;
pub(crate) mod reply;
pub mod request;
pub mod response;
pub mod status;
pub mod wait;
pub(crate) mod websocket;
