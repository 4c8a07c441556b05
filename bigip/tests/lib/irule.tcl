# irule.tcl - an offline BIG-IP iRule runtime for the MCP iRules, driven by recorded traffic.
#
# Theory of operation
# -------------------
# Rules are read from their files (`h::load_rule NAME FILE`): top-level `proc` commands become
# procs in namespace ::irule::NAME of every connection interpreter (reached with
# `call NAME::proc`), `when EVENT` bodies are kept per event.
#
# `RULE_INIT` runs once in a scratch interpreter; the static:: variables it sets are copied
# into every connection. Each client connection gets its own slave interpreter, so variables
# set by one event are seen by the next events of that connection only, as on the device.
# The iRule commands the files use are aliases into this file (namespace ::h::cmd), which
# hold the state that is global on the device: the session table (`table`), persistence
# records (`persist`), data groups (`class`), the load-balancing pool and the log.
#
# `h::replay TRAFFIC` walks a recorded traffic file (see tests/bigip/bigip_traffic.py for the
# format) in recorded order and raises the events a BIG-IP would raise:
#   connect          CLIENT_ACCEPTED
#   request          HTTP_REQUEST, then HTTP_REQUEST_DATA if the rule collected the body;
#                    then a load-balancing decision (persistence record or round robin)
#   response         HTTP_RESPONSE for the oldest request of the connection
#   response_data    HTTP_RESPONSE_DATA (collect), SSE_RESPONSE per complete event (sse
#                    profile) or plain pass-through
#   ws_frame         WS_CLIENT_FRAME / WS_SERVER_FRAME, then *_DATA if collected
#   close            CLIENT_CLOSED
# What the client and the server would receive after the rule's changes is kept per
# connection (`h::client_view`, `h::server_view`), so tests assert on what goes on the wire.
#
# The runtime is strict where the device is strict (commands outside the events they are valid
# in, collected data never released) and reports every Tcl error of a rule in `h::tcl_errors`;
# an error aborts the connection on the device, so tests require that list to stay empty.

namespace eval ::h {
    variable procs          ;# rule::name -> {args body}
    variable events         ;# EVENT -> list of {rule body}
    variable defined {}     ;# "proc RULE::name" and "event RULE EVENT", for coverage
    variable rule_files     ;# rule -> file
    variable trace          ;# coverage: items seen
    variable statics {}     ;# static:: variables after RULE_INIT (dict name -> value)
    variable static_overrides {}
    variable datagroups     ;# name -> list of records
    variable members {}     ;# pool members "addr:port"
    variable options        ;# sse_profile 0|1
    variable now_ms 0
    variable log {}         ;# list of {cid rule event level message}
    variable tcl_errors {}
    variable lb {}          ;# list of dicts: cid method uri member via key
    variable persist        ;# key -> member
    variable table          ;# subtable\0key -> {value expiry_ms}
    variable rr 0
    variable c              ;# per-connection state: c(cid,field)
    variable conns {}
    array set procs {}
    array set events {}
    array set rule_files {}
    array set trace {}
    array set datagroups {}
    array set options {sse_profile 1}
    array set persist {}
    array set table {}
    array set c {}
}

# Which commands are valid in which events (the device rejects the others at run time).
namespace eval ::h {
    variable valid
    array set valid {
        HTTP::payload   {HTTP_REQUEST_DATA HTTP_RESPONSE_DATA}
        HTTP::release   {HTTP_REQUEST_DATA HTTP_RESPONSE_DATA}
        HTTP::collect   {HTTP_REQUEST HTTP_REQUEST_DATA HTTP_RESPONSE HTTP_RESPONSE_DATA}
        HTTP::respond   {HTTP_REQUEST HTTP_REQUEST_DATA HTTP_RESPONSE HTTP_RESPONSE_DATA}
        HTTP::uri       {HTTP_REQUEST HTTP_REQUEST_DATA}
        HTTP::path      {HTTP_REQUEST HTTP_REQUEST_DATA}
        HTTP::method    {HTTP_REQUEST HTTP_REQUEST_DATA}
        HTTP::header    {HTTP_REQUEST HTTP_REQUEST_DATA HTTP_RESPONSE HTTP_RESPONSE_DATA}
        HTTP::status    {HTTP_RESPONSE HTTP_RESPONSE_DATA}
        SSE::field      {SSE_RESPONSE}
        WS::frame       {WS_CLIENT_FRAME WS_SERVER_FRAME WS_CLIENT_DATA WS_SERVER_DATA}
        WS::collect     {WS_CLIENT_FRAME WS_SERVER_FRAME WS_CLIENT_DATA WS_SERVER_DATA}
        WS::payload     {WS_CLIENT_DATA WS_SERVER_DATA}
        WS::release     {WS_CLIENT_DATA WS_SERVER_DATA}
        WS::disconnect  {WS_CLIENT_FRAME WS_SERVER_FRAME WS_CLIENT_DATA WS_SERVER_DATA}
        persist/uie     {HTTP_REQUEST HTTP_REQUEST_DATA}
        persist/add     {HTTP_RESPONSE HTTP_RESPONSE_DATA SSE_RESPONSE WS_SERVER_DATA}
        persist/delete  {*}
    }
}

# --- loading rules and configuration -------------------------------------------------------

# Splits a Tcl script into its top-level commands (comments and blank lines dropped).
proc h::commands {script} {
    set out {}
    set cmd ""
    foreach line [split $script "\n"] {
        if {$cmd eq "" && [regexp {^\s*(#|$)} $line]} { continue }
        append cmd $line "\n"
        if {[info complete $cmd]} {
            lappend out [string trim $cmd]
            set cmd ""
        }
    }
    if {[string trim $cmd] ne ""} { error "incomplete command at end of script" }
    return $out
}

proc h::load_rule {rule file} {
    variable procs
    variable events
    variable defined
    variable rule_files
    set fd [open $file r]
    fconfigure $fd -encoding utf-8
    set script [read $fd]
    close $fd
    set rule_files($rule) $file
    foreach cmd [commands $script] {
        switch -- [lindex $cmd 0] {
            proc {
                if {[llength $cmd] != 4} { error "$file: malformed proc: [string range $cmd 0 60]" }
                lassign $cmd - name arglist body
                set procs(${rule}::$name) [list $arglist $body]
                lappend defined "proc ${rule}::$name"
            }
            when {
                set event [lindex $cmd 1]
                set body [lindex $cmd end]
                lappend events($event) [list $rule $body]
                lappend defined "event $rule $event"
            }
            default {
                error "$file: unexpected top-level command '[lindex $cmd 0]'"
            }
        }
    }
}

# Reads bigip.conf: the members of the MCP pool and the records of every internal data group.
proc h::load_conf {file} {
    variable datagroups
    variable members
    set config [conf_parse $file]
    set members {}
    foreach {kind body} $config {
        if {[lrange $kind 0 1] eq {ltm pool} && [string match *mcp* [lindex $kind 2]]} {
            foreach {member attrs} [dict get $body members] { lappend members [lindex [split $member /] end] }
        }
        if {[lrange $kind 0 2] eq {ltm data-group internal}} {
            set records {}
            if {[dict exists $body records]} {
                foreach {record attrs} [dict get $body records] { lappend records $record }
            }
            set datagroups([lindex [split [lindex $kind 3] /] end]) $records
        }
    }
    if {[llength $members] == 0} { error "$file: no MCP pool members found" }
}

# bigip.conf is a sequence of "words... { body }" stanzas; with comments removed, each
# stanza body is a valid Tcl list of name/value pairs (tmsh quoting is Tcl's).
# Returns a flat list: {kind-words body-dict ...}.
proc h::conf_parse {file} {
    set fd [open $file r]
    set lines {}
    foreach line [split [read $fd] "\n"] {
        if {![regexp {^\s*#} $line]} { lappend lines $line }
    }
    close $fd
    set words [join $lines "\n"]
    set out {}
    set kind {}
    foreach word $words {
        if {[regexp {\s} $word] || $word eq ""} {
            lappend out $kind [conf_body $word]
            set kind {}
        } else {
            lappend kind $word
        }
    }
    if {$kind ne {}} { error "$file: trailing words '$kind'" }
    return $out
}

# A stanza body to a dict. A value is a nested body when it is a multi-word list.
proc h::conf_body {text} {
    set d [dict create]
    set items $text
    set i 0
    while {$i < [llength $items]} {
        set name [lindex $items $i]
        set value [lindex $items [expr {$i + 1}]]
        # flags without value (e.g. "none" inside lists) are not used in our file
        dict set d $name $value
        incr i 2
    }
    return $d
}

# --- state ---------------------------------------------------------------------------------

proc h::reset {} {
    variable statics
    variable static_overrides {}
    variable log {}
    variable tcl_errors {}
    variable lb {}
    variable rr 0
    variable now_ms 0
    variable conns
    variable c
    variable persist
    variable table
    variable options
    foreach cid $conns {
        if {[info exists c($cid,interp)] && [interp exists $c($cid,interp)]} {
            interp delete $c($cid,interp)
        }
    }
    set conns {}
    array unset c
    array set c {}
    array unset persist
    array set persist {}
    array unset table
    array set table {}
    array set options {sse_profile 1}
    run_rule_init
}

proc h::run_rule_init {} {
    variable events
    variable statics
    set i [interp create]
    $i eval {namespace eval static {}}
    if {[info exists events(RULE_INIT)]} {
        foreach entry $events(RULE_INIT) {
            lassign $entry rule body
            trace_item "event $rule RULE_INIT"
            $i eval $body
        }
    }
    set statics [dict create]
    foreach var [$i eval {info vars ::static::*}] {
        dict set statics [namespace tail $var] [$i eval [list set $var]]
    }
    interp delete $i
}

# h::static NAME VALUE: override a static:: variable for connections created afterwards.
proc h::static {name value} {
    variable statics
    if {![dict exists $statics $name]} { error "no static::$name is set by RULE_INIT" }
    dict set statics $name $value
}

proc h::option {name value} {
    variable options
    set options($name) $value
}

proc h::trace_item {item} {
    variable trace
    set trace($item) 1
}

proc h::emulated {} {
    return {
        log HTTP::uri HTTP::path HTTP::method HTTP::header HTTP::payload HTTP::collect
        HTTP::release HTTP::respond HTTP::status URI::query IP::client_addr TCP::client_port
        persist table class JSON::parse JSON::root JSON::type JSON::get JSON::object
        JSON::array SSE::field WS::frame WS::collect WS::payload WS::release WS::disconnect
    }
}

proc h::conn_new {cid addr port} {
    variable c
    variable conns
    variable procs
    variable statics
    lappend conns $cid
    set i [interp create]
    set c($cid,interp) $i
    set c($cid,addr) $addr
    set c($cid,port) $port
    set c($cid,event) ""
    set c($cid,rule) ""
    set c($cid,queue) {}
    set c($cid,upgraded) 0
    set c($cid,client) {}
    set c($cid,server) {}
    set c($cid,member) ""
    set c($cid,resp) {}
    set c($cid,closed) 0
    $i eval {namespace eval static {}; namespace eval irule {}}
    foreach ns {HTTP URI IP TCP JSON SSE WS} { $i eval [list namespace eval $ns {}] }
    dict for {name value} $statics { $i eval [list set ::static::$name $value] }
    foreach cmd [emulated] {
        regsub -all {::} $cmd {_} handler
        interp alias $i $cmd {} ::h::cmd::$handler $cid
    }
    interp alias $i ::h_trace {} ::h::trace_item
    interp alias $i ::h_now {} ::h::now
    # Rule clock: `clock clicks -milliseconds` is the recorded time of the current event.
    $i eval {
        rename clock ::tcl_clock
        proc clock {args} {
            if {$args eq {clicks -milliseconds}} { return [::h_now] }
            return [::tcl_clock {*}$args]
        }
        proc call {name args} {
            if {![string match *::* $name]} {
                error "harness: 'call $name' must name the rule (call RULE::proc)"
            }
            ::h_trace "proc $name"
            return [::irule::$name {*}$args]
        }
    }
    foreach name [array names procs] {
        lassign $procs($name) arglist body
        set ns [namespace qualifiers $name]
        $i eval [list namespace eval ::irule::$ns {}]
        $i eval [list proc ::irule::$name $arglist $body]
    }
    fire $cid CLIENT_ACCEPTED
}

proc h::now {} {
    variable now_ms
    return $now_ms
}

# fire CID EVENT: run every rule's handler of EVENT in the connection's interpreter.
proc h::fire {cid event} {
    variable events
    variable c
    variable tcl_errors
    if {![info exists events($event)]} { return }
    set c($cid,event) $event
    foreach entry $events($event) {
        lassign $entry rule body
        set c($cid,rule) $rule
        trace_item "event $rule $event"
        set code [catch {$c($cid,interp) eval $body} result options]
        if {$code == 1} {
            lappend tcl_errors [list $cid $event $rule [dict get $options -errorinfo]]
        }
    }
    set c($cid,event) ""
}

proc h::require {cid cmd} {
    variable valid
    variable c
    if {[info exists valid($cmd)] && "*" ni $valid($cmd) && $c($cid,event) ni $valid($cmd)} {
        error "$cmd is not valid in $c($cid,event)"
    }
}

# --- emulated commands -----------------------------------------------------------------------

namespace eval ::h::cmd {}

proc h::cmd::log {cid args} {
    variable ::h::c
    variable ::h::log
    if {[llength $args] == 1} {
        set level local0.
        set message [lindex $args 0]
    } elseif {[llength $args] == 2} {
        lassign $args level message
        if {![regexp {^local[0-7]\.[a-z]*$} $level]} { error "log: bad facility '$level'" }
    } else {
        error "wrong # args: log ?FACILITY.LEVEL? MESSAGE"
    }
    lappend log [list $cid $c($cid,rule) $c($cid,event) $level $message]
}

proc h::cmd::Req {cid} {
    variable ::h::c
    if {$c($cid,event) in {HTTP_REQUEST HTTP_REQUEST_DATA}} { return $c($cid,req) }
    return $c($cid,resp)
}

proc h::cmd::HTTP_uri {cid} {
    ::h::require $cid HTTP::uri
    return [dict get $::h::c($cid,req) uri]
}

proc h::cmd::HTTP_path {cid} {
    ::h::require $cid HTTP::path
    return [lindex [split [dict get $::h::c($cid,req) uri] ?] 0]
}

proc h::cmd::HTTP_method {cid} {
    ::h::require $cid HTTP::method
    return [dict get $::h::c($cid,req) method]
}

proc h::cmd::HTTP_status {cid} {
    ::h::require $cid HTTP::status
    return [dict get $::h::c($cid,resp) status]
}

proc h::cmd::HeaderValue {headers name} {
    foreach pair $headers {
        if {[string equal -nocase [lindex $pair 0] $name]} { return [lindex $pair 1] }
    }
    return ""
}

proc h::cmd::HTTP_header {cid args} {
    ::h::require $cid HTTP::header
    set headers [dict get [Req $cid] headers]
    switch -- [llength $args] {
        1 { return [HeaderValue $headers [lindex $args 0]] }
        2 {
            lassign $args sub name
            switch -- $sub {
                value { return [HeaderValue $headers $name] }
                exists {
                    foreach pair $headers {
                        if {[string equal -nocase [lindex $pair 0] $name]} { return 1 }
                    }
                    return 0
                }
            }
        }
    }
    error "HTTP::header [lindex $args 0]: not emulated"
}

proc h::cmd::HTTP_collect {cid args} {
    variable ::h::c
    ::h::require $cid HTTP::collect
    if {[llength $args] > 1} { error "wrong # args: HTTP::collect ?LENGTH?" }
    set length [lindex $args 0]
    if {$length eq ""} { set length 0 }
    if {![string is integer -strict $length] || $length < 0} { error "HTTP::collect: bad length '$length'" }
    set c($cid,collect) $length
}

proc h::cmd::HTTP_release {cid} {
    variable ::h::c
    ::h::require $cid HTTP::release
    set c($cid,released) 1
}

proc h::cmd::HTTP_payload {cid args} {
    variable ::h::c
    ::h::require $cid HTTP::payload
    set payload $c($cid,payload)
    switch -- [llength $args] {
        0 { return $payload }
        1 {
            if {[lindex $args 0] eq "length"} { return [string length $payload] }
            return [string range $payload 0 [expr {[lindex $args 0] - 1}]]
        }
        2 {
            lassign $args offset size
            return [string range $payload $offset [expr {$offset + $size - 1}]]
        }
        4 {
            lassign $args sub offset size text
            if {$sub ne "replace"} { error "HTTP::payload $sub: not emulated" }
            set c($cid,payload) "[string range $payload 0 [expr {$offset - 1}]]$text[string range $payload [expr {$offset + $size}] end]"
            return ""
        }
    }
    error "HTTP::payload: arguments not emulated: $args"
}

proc h::cmd::HTTP_respond {cid status args} {
    variable ::h::c
    ::h::require $cid HTTP::respond
    set body ""
    set headers {}
    while {[llength $args]} {
        set args [lassign $args word]
        switch -- $word {
            content { set args [lassign $args body] }
            noserver { }
            default {
                set args [lassign $args value]
                lappend headers [list $word $value]
            }
        }
    }
    set c($cid,responded) [dict create status $status headers $headers body $body]
}

proc h::cmd::URI_query {cid uri args} {
    set query ""
    set q [string first ? $uri]
    if {$q >= 0} { set query [string range $uri [expr {$q + 1}] end] }
    if {[llength $args] == 0} { return $query }
    foreach pair [split $query &] {
        set eq [string first = $pair]
        if {$eq < 0} { continue }
        if {[string range $pair 0 [expr {$eq - 1}]] eq [lindex $args 0]} {
            return [string range $pair [expr {$eq + 1}] end]
        }
    }
    return ""
}

proc h::cmd::IP_client_addr {cid} { return $::h::c($cid,addr) }
proc h::cmd::TCP_client_port {cid} { return $::h::c($cid,port) }

proc h::cmd::persist {cid args} {
    variable ::h::c
    variable ::h::persist
    switch -- [lindex $args 0] {
        uie {
            ::h::require $cid persist/uie
            set c($cid,persist_key) [lindex $args 1]
        }
        add {
            ::h::require $cid persist/add
            if {[lindex $args 1] ne "uie"} { error "persist add [lindex $args 1]: not emulated" }
            if {$c($cid,member) eq ""} { error "persist add: no pool member selected" }
            set persist([lindex $args 2]) $c($cid,member)
            ::h::note_persist add [lindex $args 2] $c($cid,member)
        }
        delete {
            if {[lindex $args 1] ne "uie"} { error "persist delete [lindex $args 1]: not emulated" }
            unset -nocomplain persist([lindex $args 2])
            ::h::note_persist delete [lindex $args 2] ""
        }
        default { error "persist [lindex $args 0]: not emulated" }
    }
}

proc h::cmd::table {cid sub args} {
    variable ::h::table
    set subtable ""
    set rest {}
    while {[llength $args]} {
        set args [lassign $args word]
        switch -- $word {
            -subtable { set args [lassign $args subtable] }
            -notouch - -excl - -mustexist { }
            default { lappend rest $word }
        }
    }
    set now [::h::now]
    switch -- $sub {
        set {
            lassign $rest key value timeout
            if {$timeout eq ""} { set timeout 180 }
            set table($subtable\0$key) [list $value [expr {$now + 1000 * $timeout}]]
            return $value
        }
        lookup {
            set key [lindex $rest 0]
            if {![info exists table($subtable\0$key)]} { return "" }
            lassign $table($subtable\0$key) value expiry
            if {$expiry < $now} {
                unset table($subtable\0$key)
                return ""
            }
            return $value
        }
        delete {
            unset -nocomplain table($subtable\0[lindex $rest 0])
            return ""
        }
    }
    error "table $sub: not emulated"
}

proc h::cmd::class {cid sub args} {
    variable ::h::datagroups
    if {$sub ne "match"} { error "class $sub: not emulated" }
    if {[lindex $args 0] eq "--"} { set args [lrange $args 1 end] }
    lassign $args item op dg
    if {$op ne "equals"} { error "class match $op: not emulated" }
    if {![info exists datagroups($dg)]} { error "class match: no data group '$dg'" }
    return [expr {$item in $datagroups($dg)}]
}

proc h::cmd::JSON_parse {cid args} { return [::hjson::cmd_parse {*}$args] }
proc h::cmd::JSON_root {cid cache} { return [::hjson::cmd_root $cache] }
proc h::cmd::JSON_type {cid elem} { return [::hjson::cmd_type $elem] }
proc h::cmd::JSON_get {cid args} { return [::hjson::cmd_get {*}$args] }
proc h::cmd::JSON_object {cid args} { return [::hjson::cmd_object {*}$args] }
proc h::cmd::JSON_array {cid args} { return [::hjson::cmd_array {*}$args] }

proc h::cmd::SSE_field {cid sub name args} {
    variable ::h::c
    ::h::require $cid SSE::field
    set fields $c($cid,sse_fields)
    switch -- $sub {
        get {
            set values {}
            foreach {n v} $fields { if {$n eq $name} { lappend values $v } }
            if {$name eq "data"} { return [join $values "\n"] }
            return [lindex $values end]
        }
        set {
            set value [lindex $args 0]
            set new {}
            set placed 0
            foreach {n v} $fields {
                if {$n eq $name} {
                    if {!$placed} {
                        foreach part [split $value "\n"] { lappend new $name $part }
                        set placed 1
                    }
                    continue
                }
                lappend new $n $v
            }
            if {!$placed} { foreach part [split $value "\n"] { lappend new $name $part } }
            set c($cid,sse_fields) $new
            return ""
        }
        remove {
            set new {}
            foreach {n v} $fields { if {$n ne $name} { lappend new $n $v } }
            set c($cid,sse_fields) $new
            return ""
        }
    }
    error "SSE::field $sub: not emulated"
}

proc h::cmd::WS_frame {cid sub} {
    ::h::require $cid WS::frame
    switch -- $sub {
        type { return [dict get $::h::c($cid,frame) opcode] }
        eom { return [dict get $::h::c($cid,frame) fin] }
        drop {
            set ::h::c($cid,ws_drop) 1
            return ""
        }
    }
    error "WS::frame $sub: not emulated"
}

# WS::disconnect CODE ?REASON?: a close frame to both ends once the current frame is done; the
# connection carries nothing more.
proc h::cmd::WS_disconnect {cid code {reason ""}} {
    ::h::require $cid WS::disconnect
    if {![string is integer -strict $code]} { error "WS::disconnect: bad code '$code'" }
    if {[string length $reason] > 123} { error "WS::disconnect: reason over 123 bytes" }
    set ::h::c($cid,ws_disconnect) [list $code $reason]
    return ""
}

proc h::cmd::WS_collect {cid args} {
    ::h::require $cid WS::collect
    if {[lindex $args 0] ne "frame"} { error "WS::collect: only 'frame' is emulated" }
    set ::h::c($cid,ws_collect) 1
}

proc h::cmd::WS_payload {cid args} {
    variable ::h::c
    ::h::require $cid WS::payload
    set payload $c($cid,payload)
    if {[llength $args] == 0} { return $payload }
    if {$args eq "length"} { return [string length $payload] }
    if {[lindex $args 0] eq "replace" && [llength $args] == 4} {
        lassign $args - offset size text
        set c($cid,payload) "[string range $payload 0 [expr {$offset - 1}]]$text[string range $payload [expr {$offset + $size}] end]"
        return ""
    }
    error "WS::payload: arguments not emulated: $args"
}

proc h::cmd::WS_release {cid} {
    ::h::require $cid WS::release
    set ::h::c($cid,released) 1
}

# --- load balancing and persistence ---------------------------------------------------------

proc h::note_persist {action key member} {
    variable lb
    lappend lb [dict create action persist-$action key $key member $member]
}

# A OneConnect virtual load balances every request: a persistence record wins, else the next
# member in round robin; "persist uie KEY" with no record yet creates one for the choice.
proc h::balance {cid req} {
    variable c
    variable persist
    variable members
    variable rr
    variable lb
    set key $c($cid,persist_key)
    if {$key ne "" && [info exists persist($key)]} {
        set member $persist($key)
        set via persist
    } else {
        set member [lindex $members [expr {$rr % [llength $members]}]]
        incr rr
        set via round-robin
        if {$key ne ""} { set persist($key) $member }
    }
    set c($cid,member) $member
    lappend lb [dict create action balance cid $cid method [dict get $req method] \
        uri [dict get $req uri] member $member via $via key $key]
}

# --- replay ---------------------------------------------------------------------------------

proc h::load_traffic {file} {
    set fd [open $file r]
    fconfigure $fd -encoding utf-8
    set text [read $fd]
    close $fd
    set traffic [::hjson::decode $text]
    if {[dict get $traffic format] ne "mcp-multi-bigip-traffic/1"} {
        error "$file: unknown traffic format '[dict get $traffic format]'"
    }
    return $traffic
}

# replay TRAFFIC ?-chunk N?: -chunk re-splits every response body into N-character pieces, to
# show that what the rule does does not depend on where TCP segments happened to end.
proc h::replay {traffic args} {
    variable now_ms
    variable c
    set chunk 0
    foreach {opt value} $args {
        switch -- $opt {
            -chunk { set chunk $value }
            default { error "replay: unknown option $opt" }
        }
    }
    foreach ev [dict get $traffic events] {
        set now_ms [expr {int(1000 * [dict get $ev t])}]
        set cid [dict get $ev conn]
        switch -- [dict get $ev type] {
            connect { conn_new $cid [dict get $ev client_addr] [dict get $ev client_port] }
            request { on_request $cid $ev }
            response { on_response $cid $ev }
            response_data {
                set data [dict get $ev data]
                if {$chunk > 0} {
                    for {set i 0} {$i < [string length $data]} {incr i $chunk} {
                        on_response_data $cid [string range $data $i [expr {$i + $chunk - 1}]]
                    }
                } else {
                    on_response_data $cid $data
                }
            }
            response_end { on_response_end $cid }
            ws_frame { on_ws_frame $cid $ev }
            close {
                if {!$c($cid,closed)} {
                    set c($cid,closed) 1
                    fire $cid CLIENT_CLOSED
                }
            }
            default { error "replay: unknown event type [dict get $ev type]" }
        }
    }
    # Connections still open at the end of the recording close now.
    foreach cid $::h::conns {
        if {!$c($cid,closed)} {
            set c($cid,closed) 1
            fire $cid CLIENT_CLOSED
        }
    }
}

proc h::on_request {cid ev} {
    variable c
    set req [dict create method [dict get $ev method] uri [dict get $ev uri] \
        headers [dict get $ev headers] body [dict get $ev body]]
    set c($cid,req) $req
    set c($cid,collect) -1
    set c($cid,released) 0
    set c($cid,responded) ""
    set c($cid,persist_key) ""
    fire $cid HTTP_REQUEST
    if {$c($cid,responded) eq "" && $c($cid,collect) >= 0} {
        set body [dict get $req body]
        set c($cid,payload) $body
        if {$c($cid,collect) > 0} {
            set c($cid,payload) [string range $body 0 [expr {$c($cid,collect) - 1}]]
        }
        fire $cid HTTP_REQUEST_DATA
        if {$c($cid,responded) eq ""} {
            if {!$c($cid,released)} {
                error "connection $cid: HTTP_REQUEST_DATA ended without HTTP::release or HTTP::respond"
            }
            dict set req body $c($cid,payload)
            set c($cid,req) $req
        }
    }
    if {$c($cid,responded) ne ""} {
        lappend c($cid,client) [dict merge {kind response local 1} $c($cid,responded)]
        lappend c($cid,queue) local
        return
    }
    balance $cid $req
    lappend c($cid,server) [dict merge {kind request} $req [dict create member $c($cid,member)]]
    lappend c($cid,queue) forwarded
}

proc h::on_response {cid ev} {
    variable c
    variable options
    set c($cid,queue) [lassign $c($cid,queue) origin]
    if {$origin eq "local"} {
        # The BIG-IP answered this request itself: the server never saw it, so its recorded
        # answer does not exist on this path.
        set c($cid,mode) skip
        return
    }
    set c($cid,resp) [dict create status [dict get $ev status] headers [dict get $ev headers]]
    set c($cid,collect) -1
    set c($cid,released) 0
    set c($cid,responded) ""
    set c($cid,buffer) ""
    fire $cid HTTP_RESPONSE
    lappend c($cid,client) [dict merge {kind response local 0 body ""} $c($cid,resp)]
    set ctype [cmd::HeaderValue [dict get $ev headers] Content-Type]
    if {[dict get $ev status] == 101} {
        set c($cid,upgraded) 1
        set c($cid,mode) pass
    } elseif {$c($cid,collect) >= 0} {
        set c($cid,mode) collect
    } elseif {[string match -nocase text/event-stream* $ctype] && $options(sse_profile)} {
        set c($cid,mode) sse
        set c($cid,sse_buffer) ""
    } else {
        set c($cid,mode) pass
    }
}

proc h::client_append {cid data} {
    variable c
    set last [lindex $c($cid,client) end]
    dict append last body $data
    lset c($cid,client) end $last
}

proc h::on_response_data {cid data} {
    variable c
    switch -- $c($cid,mode) {
        skip { }
        pass { client_append $cid $data }
        collect {
            append c($cid,buffer) $data
            if {$c($cid,collect) == 0 || [string length $c($cid,buffer)] < $c($cid,collect)} {
                return
            }
            collected_response_data $cid
        }
        sse {
            append c($cid,sse_buffer) $data
            while {[regexp -indices {\r\n\r\n|\n\n|\r\r} $c($cid,sse_buffer) m]} {
                set block [string range $c($cid,sse_buffer) 0 [expr {[lindex $m 0] - 1}]]
                set c($cid,sse_buffer) [string range $c($cid,sse_buffer) [expr {[lindex $m 1] + 1}] end]
                sse_event $cid $block
            }
        }
    }
}

# HTTP_RESPONSE_DATA with what was collected; the rule may collect again (streams).
proc h::collected_response_data {cid} {
    variable c
    set c($cid,payload) $c($cid,buffer)
    set c($cid,buffer) ""
    set c($cid,collect) -1
    set c($cid,released) 0
    fire $cid HTTP_RESPONSE_DATA
    if {!$c($cid,released)} {
        error "connection $cid: HTTP_RESPONSE_DATA ended without HTTP::release"
    }
    client_append $cid $c($cid,payload)
    if {$c($cid,collect) < 0} {
        set c($cid,mode) pass
    }
}

proc h::on_response_end {cid} {
    variable c
    if {$c($cid,mode) eq "collect" && $c($cid,buffer) ne ""} {
        collected_response_data $cid
    }
    if {$c($cid,mode) eq "sse" && $c($cid,sse_buffer) ne ""} {
        client_append $cid $c($cid,sse_buffer)
        set c($cid,sse_buffer) ""
    }
    set c($cid,mode) pass
}

# One event as the sse profile frames it: SSE_RESPONSE, then the (possibly changed) fields
# are written to the client.
proc h::sse_event {cid block} {
    variable c
    set fields {}
    foreach line [split [string map [list "\r\n" "\n" "\r" "\n"] $block] "\n"] {
        set colon [string first : $line]
        if {$colon < 0} {
            lappend fields $line ""
        } elseif {$colon == 0} {
            lappend fields "" [string range $line 1 end]
        } else {
            set value [string range $line [expr {$colon + 1}] end]
            if {[string index $value 0] eq " "} { set value [string range $value 1 end] }
            lappend fields [string range $line 0 [expr {$colon - 1}]] $value
        }
    }
    set c($cid,sse_fields) $fields
    fire $cid SSE_RESPONSE
    set out ""
    foreach {name value} $c($cid,sse_fields) {
        if {$name eq ""} { append out ":$value\n" } else { append out "$name: $value\n" }
    }
    client_append $cid "$out\n"
}

proc h::on_ws_frame {cid ev} {
    variable c
    if {[info exists c($cid,ws_disconnect)]} {
        # WS::disconnect closed both ends: later frames of the recording never arrive.
        return
    }
    set from [dict get $ev from]
    set fin [expr {![dict exists $ev fin] || [dict get $ev fin] ? 1 : 0}]
    set c($cid,frame) [dict create opcode [dict get $ev opcode] fin $fin payload [dict get $ev payload]]
    set c($cid,ws_collect) 0
    set c($cid,released) 0
    set c($cid,ws_drop) 0
    set prefix [expr {$from eq "client" ? "WS_CLIENT" : "WS_SERVER"}]
    fire $cid ${prefix}_FRAME
    if {$c($cid,ws_drop) || [info exists c($cid,ws_disconnect)]} {
        if {$c($cid,ws_collect)} { error "connection $cid: WS::collect on a dropped frame" }
        if {!$c($cid,ws_drop)} {
            set frame [dict create kind ws_frame opcode [dict get $ev opcode] fin $fin payload [dict get $ev payload]]
            if {$from eq "client"} { lappend c($cid,server) $frame } else { lappend c($cid,client) $frame }
        }
        if {[info exists c($cid,ws_disconnect)]} {
            lassign $c($cid,ws_disconnect) code reason
            set close [dict create kind ws_frame opcode 8 fin 1 \
                payload "[binary format S $code]$reason" code $code reason $reason]
            lappend c($cid,client) $close
            lappend c($cid,server) $close
        }
        return
    }
    set payload [dict get $ev payload]
    if {$c($cid,ws_collect)} {
        set c($cid,payload) $payload
        fire $cid ${prefix}_DATA
        if {!$c($cid,released)} {
            error "connection $cid: ${prefix}_DATA ended without WS::release"
        }
        set payload $c($cid,payload)
    }
    set frame [dict create kind ws_frame opcode [dict get $ev opcode] fin $fin payload $payload]
    if {$from eq "client"} {
        lappend c($cid,server) $frame
    } else {
        lappend c($cid,client) $frame
    }
}

# --- views for assertions --------------------------------------------------------------------

# client_view CID: what the client received, in order: response dicts (status headers body
# local) and ws_frame dicts (opcode payload).
proc h::client_view {cid} { return $::h::c($cid,client) }

# server_view CID: what the server received: request dicts (method uri headers body member)
# and ws_frame dicts.
proc h::server_view {cid} { return $::h::c($cid,server) }

# log_lines ?PATTERN?: the messages logged by the rules (glob filter).
proc h::log_lines {{pattern *}} {
    set out {}
    foreach entry $::h::log {
        if {[string match $pattern [lindex $entry 4]]} { lappend out [lindex $entry 4] }
    }
    return $out
}

# The log as the device writes it: "Rule /Common/NAME <EVENT>: message".
proc h::log_text {} {
    set out {}
    foreach entry $::h::log {
        lassign $entry cid rule event level message
        lappend out "Rule /Common/$rule <$event>: $message"
    }
    return [join $out "\n"]
}

# fields LINE -> dict of the key=value fields of one MCP log line (quotes removed).
proc h::fields {line} {
    set d [dict create dir [lindex $line 1]]
    foreach {all name value} [regexp -all -inline {([a-z_]+)=("(?:[^"\\]|\\.)*"|\S*)} $line] {
        if {[string index $value 0] eq "\""} {
            set value [string map {\\\" \"} [string range $value 1 end-1]]
        }
        dict set d $name $value
    }
    return $d
}
