//! One module per subcommand.

pub mod bcda;
pub mod cclf;
pub mod fetch;
pub mod load;
pub mod reload;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod scan;
pub mod synth;
pub mod views;
