//! Protocols and clients for Lua services (issue 26): skynet.crypt and md5, run from
//! configs as skynet users write them.

use crate::support::*;

#[test]
fn skynet_crypt_and_md5_give_skynet_s_bytes() {
    run_skynet_style("test_crypt", "");
}
