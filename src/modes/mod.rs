//! One module per mode of the command line; [`crate::run`] picks the one the
//! [`crate::Mode`] names. Every mode that talks to the forge connects through
//! [`crate::connect`].

pub mod all;
pub mod discover;
pub mod drain;
pub mod generate;
pub mod log;
pub mod status;
pub mod stop;
