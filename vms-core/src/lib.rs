//! Shared domain types of the network: ids, region codes, time, errors, spec wire types.
