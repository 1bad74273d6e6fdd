//! One module per subcommand.

pub mod bcda;
pub mod fetch;
pub mod load;
pub mod sandbox;
pub mod scan;
