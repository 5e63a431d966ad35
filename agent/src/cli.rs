//! (cli arrives next)
