//! Tests of the token proxy: its router (no sockets), and the served proxy against local
//! stand-ins for Microsoft Entra and IMDS (which cannot exist offline).

mod imds_destination;
mod router;
mod served;
mod startup;
mod support;
