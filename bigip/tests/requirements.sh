#!/bin/sh
# What bigip/tests needs on a CI machine: tclsh 8.6 and nothing else (no Tcl packages; the
# harness carries its own JSON parser). Called by .ci/run before the tests; a no-op when
# tclsh 8.6 is already there.
set -eu
if command -v tclsh8.6 >/dev/null 2>&1; then
    exit 0
fi
if command -v tclsh >/dev/null 2>&1 \
        && echo 'exit [expr {[package vsatisfies [info patchlevel] 8.6-] ? 0 : 1}]' | tclsh; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO=sudo
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq tcl8.6 >/dev/null
