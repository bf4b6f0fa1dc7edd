//! Keeping traffic off backends that fail, and bringing it back gently.
//!
//! The pure parts: [`breaker`] (Closed/Open/HalfOpen, which is also
//! passive ejection), [`health`] (rise/fall of active probes), [`weights`]
//! (adaptive weights and slow start). The thread that runs them,
//! `corelb-health` ([`thread`]), never touches a request: it probes
//! backends (`probe`), and every 100 ms reads what the workers counted,
//! advances each backend's breaker and publishes its state
//! (`backend_state`), and sets each pool's panic flag and effective
//! weights (`pool_state`) through the backends' atomics. When nothing
//! moves, that walk over every backend happens every 5 s (`pace`).

mod backend_state;
pub mod breaker;
pub mod health;
mod pace;
pub mod pool_state;
mod probe;
pub mod thread;
mod tracked;
pub mod weights;
