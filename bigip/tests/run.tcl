#!/usr/bin/env tclsh
# run.tcl - run the offline test suite of the BIG-IP iRules (plain tclsh 8.6, no packages).
#
#   tclsh bigip/tests/run.tcl                 run every case
#   tclsh bigip/tests/run.tcl --list          print the case names, one per line
#   tclsh bigip/tests/run.tcl --case NAME     run one case
#   tclsh bigip/tests/run.tcl --replay NAME   replay traffic/NAME.json through the rules and
#                                             print the log the BIG-IP would write
#   --traffic DIR                             traffic files to replay (default: tests/traffic,
#                                             the committed recording; pytest passes a fresh one)
#
# Exit status 0 when every case run passed, 1 otherwise. A failing case prints why, then the
# rule log of its last replay, as the BIG-IP would have written it.

package require Tcl 8.6-

set here [file dirname [file normalize [info script]]]
set bigip [file dirname $here]
source [file join $here lib json.tcl]
source [file join $here lib irule.tcl]
source [file join $here lib reference.tcl]
source [file join $here cases.tcl]

set traffic_dir [file join $here traffic]
set mode all
set only ""
set argv_rest $argv
while {[llength $argv_rest]} {
    set argv_rest [lassign $argv_rest opt]
    switch -- $opt {
        --list { set mode list }
        --case {
            set mode one
            set argv_rest [lassign $argv_rest only]
        }
        --traffic { set argv_rest [lassign $argv_rest traffic_dir] }
        --replay {
            set mode replay
            set argv_rest [lassign $argv_rest only]
        }
        default {
            puts stderr "usage: tclsh run.tcl ?--traffic DIR? ?--list | --case NAME | --replay NAME?"
            exit 2
        }
    }
}

if {$mode eq "list"} {
    foreach name [case::names] { puts $name }
    exit 0
}

case::setup $bigip $traffic_dir
if {$mode eq "replay"} {
    h::reset
    h::replay [case::traffic $only]
    puts [h::log_text]
    foreach entry $h::tcl_errors { puts stderr "TCL error: [lindex $entry 3]" }
    exit [expr {[llength $h::tcl_errors] ? 1 : 0}]
}
if {$mode eq "one"} {
    if {$only ni [case::names]} {
        puts stderr "no case named '$only'"
        exit 2
    }
    set names [list $only]
} else {
    set names [case::names]
}

set failed 0
foreach name $names {
    set start [clock milliseconds]
    if {[catch {case::run $name} message]} {
        incr failed
        puts "FAIL $name: $message"
        set log [h::log_text]
        if {$log ne ""} {
            puts "--- rule log of the last replay ---"
            puts $log
        }
    } else {
        puts "ok   $name ([expr {[clock milliseconds] - $start}] ms)"
    }
}
exit [expr {$failed ? 1 : 0}]
