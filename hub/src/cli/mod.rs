//! The kubectl-like command line (arrives next).
