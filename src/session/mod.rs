//! The pure core: no browser imports, time is a parameter.
