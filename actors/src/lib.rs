//! Erlang/OTP-style processes and supervision on `may` coroutines.
