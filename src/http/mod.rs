//! HTTP/1.1: parsing, body decoding and encoding never touch a socket; `conn` owns the socket.

pub mod chunked;
pub(crate) mod conn;
pub mod date;
pub mod encode;
mod extract;
pub mod parse;
pub(crate) mod reply;
pub mod request;
pub mod response;
pub mod status;
