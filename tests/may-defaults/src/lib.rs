//! Nothing here: the checks are the integration tests, one process each, because may's
//! scheduler is process-global and Corral checks it once per process.
