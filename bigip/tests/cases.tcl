# cases.tcl - the test cases of the BIG-IP iRules, run by run.tcl (one pytest test each).
#
# Every case starts from a fresh runtime (RULE_INIT run again, no connections, empty table,
# persistence and log) and replays recorded traffic through the rules, or calls the JSON.irul
# procs on recorded messages. Assertions compare with the independent reading of the same
# traffic in reference.tcl, and with what the client and the server would receive.

namespace eval ::case {
    variable cases {}
    variable bigip ""
    variable traffic_dir ""
    variable loaded
    array set loaded {}
    # The recorded malformed body (tests/bigip/scenarios.py): a truncated object.
    variable malformed "\{\"jsonrpc\": \"2.0\", \"id\": 90, \"method\": \"tools/list\""
}

# Each case body becomes a proc of this namespace, so its variables are its own.
proc case::define {name body} {
    variable cases
    lappend cases $name
    proc ::case::case_$name {} $body
}

proc case::names {} {
    variable cases
    return $cases
}

proc case::setup {bigip traffic_dir} {
    set ::case::bigip $bigip
    set ::case::traffic_dir $traffic_dir
    h::load_rule JSON [file join $bigip JSON.irul]
    h::load_rule mcp_proxy [file join $bigip mcp_proxy.irul]
    h::load_conf [file join $bigip bigip.conf]
}

proc case::run {name} {
    h::reset
    ::case::case_$name
}

# --- helpers ----------------------------------------------------------------------------------

proc case::traffic {name} {
    variable loaded
    variable traffic_dir
    if {![info exists loaded($name)]} {
        set file [file join $traffic_dir $name.json]
        if {![file exists $file]} { error "no traffic file $file" }
        set loaded($name) [h::load_traffic $file]
    }
    return $loaded($name)
}

proc case::check {condition message} {
    if {![uplevel 1 [list expr $condition]]} { error "ASSERT: $message" }
}

proc case::equal {actual expected message} {
    if {$actual ne $expected} {
        error "ASSERT: $message\n  expected: $expected\n  actual:   $actual"
    }
}

proc case::no_tcl_errors {} {
    foreach entry $::h::tcl_errors {
        lassign $entry cid event rule info
        error "ASSERT: TCL error in rule $rule, event $event (connection $cid): $info"
    }
}

proc case::replay {name args} {
    h::replay [traffic $name] {*}$args
    no_tcl_errors
}

# The MCP lines of the log that stand for one JSON-RPC message each, as field dicts.
proc case::message_lines {{transport *}} {
    set out {}
    foreach line [h::log_lines "MCP ?2? *"] {
        set f [h::fields $line]
        if {[dict get $f kind] in {request notification result error not_jsonrpc invalid_json uninspected}
                && [string match $transport [dict get $f transport]]} {
            lappend out $f
        }
    }
    return $out
}

proc case::lines_of_kind {kind} {
    set out {}
    foreach line [h::log_lines "MCP *"] {
        set f [h::fields $line]
        if {[dict get $f kind] eq $kind} { lappend out $f }
    }
    return $out
}

proc case::denied_tools {} {
    return $::h::datagroups(mcp_denied_tools)
}

# What the rule must log for TRAFFIC: the reference entries, where the answer to a denied call
# is the rule's denial error instead of what the server (which ran it, unprotected, while we
# recorded) answered, and where the BIG-IP refused a body it could not read on /mcp, the
# server's recorded answer to it never passes (on legacy SSE it is on the stream regardless).
proc case::expected_entries {traffic} {
    set entries [ref::entries $traffic]
    set denied {}
    set refused {}
    foreach e $entries {
        if {[dict get $e dir] eq "c2s" && [dict get $e kind] eq "request"
                && ([dict get $e tool] in [denied_tools] || [dict get $e ambiguous])} {
            lappend denied [list [dict get $e transport] [dict get $e id]]
        }
        if {[dict get $e kind] eq "uninspected" && [dict get $e transport] eq "streamable-http"
                && [dict get $::h::statics mcp_uninspected] eq "reject"} {
            foreach id [dict get $e ids] { lappend refused [list streamable-http $id] }
        }
    }
    set out {}
    foreach e $entries {
        set k [list [dict get $e transport] [dict get $e id]]
        if {[dict get $e dir] eq "s2c" && $k in $refused} { continue }
        if {[dict get $e dir] eq "s2c" && $k in $denied} {
            dict set e kind error
        }
        lappend out $e
    }
    return $out
}

proc case::key {d} {
    set id [dict get $d id]
    if {$id eq ""} { set id "-" }
    return [list [dict get $d dir] [dict get $d transport] [dict get $d kind] $id]
}

# One log line per message in each direction: the multiset of (dir transport kind id) of the
# log equals the reference; requests name their method and tool; answers to requests seen
# carry the request's method, tool and a latency.
proc case::check_one_line_per_message {name} {
    set traffic [traffic $name]
    set expected [lsort [lmap e [expected_entries $traffic] {key $e}]]
    set lines [message_lines]
    set actual [lsort [lmap f $lines {key $f}]]
    equal $actual $expected "$name: one log line per JSON-RPC message and direction"
    check {[llength $actual] >= 8} "$name: the recording holds a real session ([llength $actual] messages)"
    set requests {}
    foreach e [expected_entries $traffic] {
        if {[dict get $e kind] eq "request" && [dict get $e dir] eq "c2s"} {
            dict set requests [list [dict get $e transport] [dict get $e id]] $e
        }
    }
    foreach f $lines {
        set k [list [dict get $f transport] [dict get $f id]]
        if {[dict get $f kind] eq "request" && [dict get $f dir] eq "c2s"} {
            set e [dict get $requests $k]
            equal [dict get $f method] [dict get $e method] "$name: method of request $k"
            equal [string map {- ""} [dict get $f tool]] [dict get $e tool] "$name: tool of request $k"
        }
        if {[dict get $f dir] eq "s2c" && [dict get $f kind] in {result error}
                && [dict exists $requests $k]} {
            set e [dict get $requests $k]
            equal [dict get $f method] [dict get $e method] "$name: method on the answer to $k"
            check {[dict exists $f latency_ms] && [dict get $f latency_ms] >= 0} \
                "$name: latency on the answer to $k: $f"
        }
    }
}

# The forwarded JSON-RPC messages (bodies of POSTs, client frames) that reached the server.
proc case::forwarded_messages {} {
    set out {}
    foreach cid $::h::conns {
        foreach item [h::server_view $cid] {
            if {[dict get $item kind] eq "request" && [dict get $item method] eq "POST"} {
                lappend out [dict get $item body]
            } elseif {[dict get $item kind] eq "ws_frame" && [dict get $item opcode] == 1} {
                lappend out [dict get $item payload]
            }
        }
    }
    return $out
}

# The JSON-RPC messages the client received: JSON bodies, SSE message events, text frames.
proc case::delivered_messages {} {
    set out {}
    foreach cid $::h::conns {
        foreach item [h::client_view $cid] {
            if {[dict get $item kind] eq "ws_frame"} {
                if {[dict get $item opcode] == 1} { lappend out [dict get $item payload] }
                continue
            }
            set ctype [h::cmd::HeaderValue [dict get $item headers] Content-Type]
            if {[string match application/json* $ctype]} {
                lappend out [dict get $item body]
            } elseif {[string match text/event-stream* $ctype]} {
                foreach event [ref::sse_events [dict get $item body]] {
                    if {[lindex $event 0] eq "message"} { lappend out [lindex $event 1] }
                }
            }
        }
    }
    return $out
}

proc case::decoded {text} {
    if {[catch {::hjson::decode $text} value]} { return {} }
    if {[string index [string trimleft $text] 0] eq "\["} { return $value }
    return [list $value]
}

# Denial: no call of a denied tool reached the server, and the client got, for every such
# call, the denial error with its id.
proc case::check_denial {name} {
    set denied_ids {}
    foreach e [ref::entries [traffic $name]] {
        if {[dict get $e dir] eq "c2s" && [dict get $e tool] in [denied_tools]} {
            lappend denied_ids [dict get $e id]
        }
    }
    check {[llength $denied_ids] > 0} "$name: the recording calls a denied tool"
    foreach text [forwarded_messages] {
        foreach m [decoded $text] {
            if {[dict exists $m method] && [dict get $m method] eq "tools/call"} {
                check {[dict get $m params name] ni [denied_tools]} \
                    "$name: a denied call reached the server: $text"
            }
            if {[dict exists $m id] && [dict get $m id] in $denied_ids} {
                equal [dict get $m method] bigip/denied "$name: denied call $text rewritten"
            }
        }
    }
    set answered {}
    foreach text [delivered_messages] {
        foreach m [decoded $text] {
            if {![dict exists $m id] || [dict get $m id] ni $denied_ids} { continue }
            check {[dict exists $m error]} "$name: the client got a result for a denied call: $text"
            equal [dict get $m error code] -32602 "$name: denial code"
            check {[regexp {^Tool '([a-z_]+)' is denied by BIG-IP policy$} [dict get $m error message] -> tool]
                && $tool in [denied_tools]} "$name: denial message: $text"
            equal [dict get $m error data deniedBy] BIG-IP "$name: denial data"
            lappend answered [dict get $m id]
        }
    }
    equal [lsort $answered] [lsort $denied_ids] "$name: every denied call answered once with the denial"
    set denials [lmap f [message_lines] {
        expr {[dict exists $f status] && [dict get $f status] eq "denied"
            && [dict get $f tool] in [denied_tools] ? [dict get $f id] : [continue]}
    }]
    equal [lsort $denials] [lsort $denied_ids] "$name: one s2c denial line per denied call"
}

# leaves NODE -> the number of scalar values in a parsed tree (empty containers count as one).
proc case::leaves {node} {
    lassign [::hjson::node $node] type value
    switch -- $type {
        object {
            set n 0
            foreach {k v} $value { incr n [leaves $v] }
            return [expr {$n ? $n : 1}]
        }
        array {
            set n 0
            foreach v $value { incr n [leaves $v] }
            return [expr {$n ? $n : 1}]
        }
    }
    return 1
}

# A connection interpreter to call the JSON.irul procs directly.
proc case::lib {script} {
    if {"lib" ni $::h::conns} { h::conn_new lib 192.0.2.1 1 }
    return [$::h::c(lib,interp) eval $script]
}

proc case::all_messages {} {
    set out {}
    foreach name {websocket sse sse_sdk streamable_http streamable_http_sdk} {
        foreach m [ref::messages [traffic $name]] { lappend out [dict get $m text] }
    }
    return $out
}

# Everything after the members, for comparing two replays of the same traffic.
proc case::observed {} {
    return [list [h::log_lines "MCP *"] [delivered_messages] [forwarded_messages]]
}

# --- JSON.irul ------------------------------------------------------------------------------

case::define json_procs_read_recorded_messages {
    # Every recorded message of every transport, read with the procs and with the reference.
    set n 0
    foreach text [all_messages] {
        set parsed [lib [list call JSON::rpc_parse $text]]
        set expected [ref::classify $text]
        if {[lindex $parsed 0] eq "invalid_json"} {
            equal [dict get [lindex $expected 0] kind] invalid_json "rpc_parse of $text"
            continue
        }
        lib [list set cache [lindex $parsed 1]]
        set messages [lib {call JSON::rpc_messages $cache}]
        if {[llength $messages] == 0} {
            equal [dict get [lindex $expected 0] kind] not_jsonrpc "rpc_messages of $text"
            continue
        }
        equal [llength $messages] [llength $expected] "number of messages in $text"
        foreach elem $messages e $expected {
            incr n
            lib [list set m $elem]
            equal [lib {call JSON::rpc_kind $m}] [dict get $e kind] "rpc_kind of $text"
            equal [lib {call JSON::rpc_id $m}] [dict get $e id] "rpc_id of $text"
            equal [lib {call JSON::rpc_method $m}] [dict get $e method] "rpc_method of $text"
            set node [::hjson::elem_node $elem]
            set id_node [ref::member $node id]
            if {$id_node ne ""} {
                equal [lib {call JSON::rpc_id_json $m}] [::hjson::render $id_node] "rpc_id_json of $text"
            }
            if {[dict get $e tool] ne ""} {
                equal [lib {call JSON::rpc_tool $m}] [dict get $e tool] "rpc_tool of $text"
                set args_node [ref::member [ref::member $node params] arguments]
                equal [lib {call JSON::rpc_arguments $m}] [::hjson::render $args_node] "rpc_arguments of $text"
                equal [lib {call JSON::text [call JSON::find_path $m params.name]}] [dict get $e tool] \
                    "find_path params.name of $text"
            }
            set error_node [ref::member $node error]
            if {$error_node ne ""} {
                equal [lib {call JSON::rpc_error_code $m}] [ref::scalar [ref::member $error_node code]] "error code of $text"
                equal [lib {call JSON::rpc_error_message $m}] [ref::scalar [ref::member $error_node message]] "error message of $text"
            } else {
                equal [lib {call JSON::rpc_error_code $m}] "" "no error code in $text"
            }
            set result_node [ref::member $node result]
            if {$result_node ne ""} {
                equal [lib {call JSON::to_json [call JSON::rpc_result $m]}] [::hjson::render $result_node] "rpc_result of $text"
                set is_error [ref::scalar [ref::member $result_node isError]]
                equal [lib {call JSON::rpc_tool_error $m}] [expr {$is_error eq "1"}] "rpc_tool_error of $text"
            }
            # to_json renders the very same tree (compared through the reference parser).
            equal [::hjson::render [::hjson::parse [lib {call JSON::to_json $m}]]] [::hjson::render $node] "to_json of $text"
        }
    }
    check {$n >= 60} "read $n recorded messages"
}

case::define json_procs_mark_bad_input {
    # Recorded malformed and non-JSON-RPC bodies, and worse: markers, never a Tcl error.
    foreach {text status} [list \
            $::case::malformed invalid_json \
            "" invalid_json "   " invalid_json {{"a":1} trailing} invalid_json \
            "[string repeat {[} 600][string repeat {]} 600]" invalid_json \
            "\[[string repeat {1,} 70000]1\]" invalid_json] {
        equal [lindex [lib [list call JSON::rpc_parse $text]] 0] $status "rpc_parse of [string range $text 0 40]"
    }
    foreach {text kind} {
        {{"hello": "BIG-IP", "id": 91}} not_jsonrpc
        {{"jsonrpc": "1.0", "id": 1, "method": "x"}} not_jsonrpc
        {{"jsonrpc": "2.0", "id": 1}} not_jsonrpc
        {{"jsonrpc": "2.0", "id": 1, "error": "flat"}} not_jsonrpc
        {{"jsonrpc": 2.0, "method": "x"}} not_jsonrpc
        {{"jsonrpc": "2.0", "method": "notifications/initialized"}} notification
        {{"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error"}}} error
    } {
        lib [list set cache [lindex [lib [list call JSON::rpc_parse $text]] 1]]
        equal [lib {call JSON::rpc_kind [lindex [call JSON::rpc_messages $cache] 0]}] $kind "rpc_kind of $text"
    }
    lib {set cache [lindex [call JSON::rpc_parse 42] 1]}
    equal [lib {call JSON::rpc_messages $cache}] {} "a scalar holds no messages"
    lib {set cache [lindex [call JSON::rpc_parse {"just a string"}] 1]}
    equal [lib {call JSON::rpc_messages $cache}] {} "a string holds no messages"
    # Accessors on handles that are not there, or of the wrong kind, answer "".
    foreach proc {rpc_kind rpc_id rpc_id_json rpc_method rpc_tool rpc_arguments rpc_result
            rpc_error_code rpc_error_message text to_json} {
        set got [lib [list call JSON::$proc ""]]
        check {$got in {"" not_jsonrpc}} "JSON::$proc on an empty handle gave '$got'"
        set got [lib [list call JSON::$proc json_cache0]]
        check {$got in {"" not_jsonrpc}} "JSON::$proc on a bogus handle gave '$got'"
    }
    equal [lib {call JSON::rpc_tool_error ""}] 0 "rpc_tool_error of nothing"
    equal [lib {call JSON::find_path "" a.b}] "" "find_path of nothing"
    equal [lib {call JSON::find_key "" a}] "" "find_key of nothing"
    equal [lib {call JSON::rpc_messages json_cache0}] {} "rpc_messages of a bogus cache"
    equal [lib {call JSON::member "" a string}] "" "member of nothing"
    check {[string match "(unprintable*" [lindex [lib {call JSON::tree json_elem0}] 0]]} "tree of a bogus handle"
}

case::define json_procs_paths_keys_and_tree {
    # The generic procs on a recorded tools/list result and tools/call request.
    set list_result ""
    set call ""
    foreach text [ref::messages [traffic websocket]] {
        set text [dict get $text text]
        if {[string match *inputSchema* $text] && $list_result eq ""} { set list_result $text }
        if {[string match {*"method":"tools/call"*math_calc*} $text] && $call eq ""} { set call $text }
    }
    check {$list_result ne "" && $call ne ""} "the websocket recording has tools/list and math_calc"
    lib [list set lcache [lindex [lib [list call JSON::rpc_parse $list_result]] 1]]
    lib {set lroot [JSON::root $lcache]}
    set first [lib {call JSON::text [call JSON::find_path $lroot result.tools.0.name]}]
    equal $first [dict get [lindex [dict get [::hjson::decode $list_result] result tools] 0] name] "find_path into an array"
    equal [lib {call JSON::find_path $lroot result.tools.99.name}] "" "find_path past the end"
    equal [lib {call JSON::find_path $lroot result.tools.x}] "" "find_path with a bad index"
    equal [lib {call JSON::find_path $lroot result.tools.0.name.deeper}] "" "find_path below a scalar"
    equal [lib {call JSON::find_path $lroot nothere}] "" "find_path of a missing key"
    # find_key goes depth first in document order: the first "name" is the first tool's.
    equal [lib {call JSON::text [call JSON::find_key $lroot name]}] $first "find_key depth first"
    equal [lib {call JSON::find_key $lroot no_such_key}] "" "find_key of a missing key"
    equal [lib {call JSON::text [call JSON::find_key $lroot type]}] object "find_key inside arrays"
    lib [list set ccache [lindex [lib [list call JSON::rpc_parse $call]] 1]]
    lib {set croot [JSON::root $ccache]}
    equal [lib {call JSON::text [call JSON::find_key $croot expression]}] \
        [dict get [::hjson::decode $call] params arguments expression] "find_key of the math expression"
    equal [lib {call JSON::text [call JSON::find_path $croot jsonrpc]}] 2.0 "text of a string"
    equal [lib {call JSON::text [call JSON::find_path $croot id]}] [dict get [::hjson::decode $call] id] "text of an integer"
    # text of every scalar type, and of a container
    lib {set tcache [lindex [call JSON::rpc_parse {{"t":true,"f":false,"n":null,"x":1.5,"o":{"a":[1]}}}] 1]}
    lib {set troot [JSON::root $tcache]}
    equal [lib {list [call JSON::text [call JSON::find_path $troot t]] [call JSON::text [call JSON::find_path $troot f]] [call JSON::text [call JSON::find_path $troot n]] [call JSON::text [call JSON::find_path $troot x]] [call JSON::text [call JSON::find_path $troot o]]}] \
        {true false null 1.5 {{"a":[1]}}} "text of each type"
    # The tree of the recorded tools/list result: one line per value, nested by indentation.
    set tree [lib {call JSON::tree $lroot}]
    check {[lindex $tree 0] eq {jsonrpc: "2.0"}} "first tree line: [lindex $tree 0]"
    check {"result:" in $tree && "  tools:" in $tree} "containers get a line of their own"
    check {[lsearch -glob $tree "      name: \"$first\""] >= 0} "a tool name four levels down: $tree"
    set leaves 0
    foreach line $tree { if {![string match *: $line]} { incr leaves } }
    equal $leaves [leaves [::hjson::parse $list_result]] "one tree line per scalar"
}

case::define json_procs_quote_and_error_response {
    foreach s [list plain "with \"quotes\" and \\ backslash" "line\nbreak\ttab\rcr" \
            "ctl \x01\x1f" "unicode héllo ✓" "{braces} \[brackets\] \$dollar"] {
        set quoted [lib [list call JSON::quote $s]]
        equal [::hjson::decode $quoted] $s "quote round trip of [string range $s 0 20]"
    }
    set reply [lib {call JSON::error_response {"abc"} -32602 "Tool 'x' is \"denied\"" {{"tool":"x"}}}]
    equal [::hjson::decode $reply] {jsonrpc 2.0 id abc error {code -32602 message {Tool 'x' is "denied"} data {tool x}}} "error_response with data"
    set reply [lib {call JSON::error_response "" -32600 "no id"}]
    equal [::hjson::render [::hjson::parse $reply]] {{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"no id"}}} "error_response without id"
}

# --- Streamable HTTP ------------------------------------------------------------------------

case::define http_one_line_per_message {
    foreach name {streamable_http streamable_http_sdk} {
        h::reset
        replay $name
        check_one_line_per_message $name
    }
}

case::define http_session_persistence {
    foreach name {streamable_http streamable_http_sdk} {
        h::reset
        replay $name
        check_http_persistence $name
    }
}

proc case::check_http_persistence {name} {
    set starts [lines_of_kind session-start]
    check {[llength $starts] >= 1} "$name: the initialize answer starts a session"
    foreach start $starts {
        set sid [dict get $start session]
        equal [dict get $start persist] mcp:$sid "$name: persistence key of the session"
        set member ""
        set seen 0
        foreach entry $::h::lb {
            if {[dict get $entry action] eq "persist-add" && [dict get $entry key] eq "mcp:$sid"} {
                set member [dict get $entry member]
            }
            if {[dict get $entry action] eq "balance" && [dict get $entry key] eq "mcp:$sid"} {
                incr seen
                equal [dict get $entry via] persist "$name: [dict get $entry method] [dict get $entry uri] found the session's record"
                equal [dict get $entry member] $member "$name: request of session $sid on the session's member"
            }
        }
        check {$member ne "" && $seen >= 3} "$name: session $sid: persist add, then $seen requests persisted"
    }
}

case::define http_denied_tool_answered_by_bigip {
    foreach name {streamable_http streamable_http_sdk} {
        h::reset
        replay $name
        check_denial $name
        check_local_denial
    }
}

proc case::check_local_denial {} {
    set local 0
    foreach cid $::h::conns {
        foreach item [h::client_view $cid] {
            if {[dict get $item kind] eq "response" && [dict get $item local]
                    && [string match *denied* [dict get $item body]]} {
                incr local
                equal [dict get $item status] 200 "the BIG-IP answers a denied call with HTTP 200"
                equal [h::cmd::HeaderValue [dict get $item headers] Content-Type] application/json "denial content type"
                check {[h::cmd::HeaderValue [dict get $item headers] Mcp-Session-Id] ne ""} "denial keeps the session header"
            }
        }
    }
    check {$local >= 1} "a denied call was answered by the BIG-IP"
    check {[llength [lmap f [lines_of_kind error] {expr {[dict exists $f action] && [dict get $f action] eq "answered-by-bigip" ? 1 : [continue]}}]] >= 1} \
        "the local answer is logged"
}

case::define http_bad_bodies_logged_and_forwarded {
    replay streamable_http
    check_bad_bodies streamable-http
    check {[llength [lines_of_kind http-error]] >= 3} "the server's 400 answers are logged"
}

proc case::check_bad_bodies {transport} {
    set invalid [lmap f [message_lines $transport] {
        expr {[dict get $f kind] eq "invalid_json" ? $f : [continue]}}]
    check {[llength $invalid] >= 1} "$transport: the malformed body is logged as invalid_json"
    foreach f $invalid {
        check {[dict exists $f reason] && [dict get $f reason] ne ""} "invalid_json line says why: $f"
    }
    set not_rpc [lmap f [message_lines $transport] {
        expr {[dict get $f kind] eq "not_jsonrpc" && [dict get $f dir] eq "c2s" ? $f : [continue]}}]
    check {[llength $not_rpc] >= 2} "$transport: the non-JSON-RPC body and the scalar are logged ($not_rpc)"
    # They pass to the server unchanged: it answers them with its own JSON-RPC errors.
    set forwarded [forwarded_messages]
    check {[lsearch -exact $forwarded $::case::malformed] >= 0} \
        "$transport: the malformed body reached the server unchanged"
    check {[lsearch -exact $forwarded {{"hello": "BIG-IP", "id": 91}}] >= 0} \
        "$transport: the non-JSON-RPC body reached the server unchanged"
    set codes [lmap f [message_lines $transport] {
        expr {[dict get $f kind] eq "error" && [dict get $f dir] eq "s2c" ? [dict get $f code] : [continue]}}]
    check {-32700 in $codes && -32600 in $codes} "$transport: the server's parse and invalid-request errors are logged ($codes)"
}

case::define uninspectable_bodies_refused_or_passed {
    # A chunked POST (no Content-Length) could carry a denied call unseen: refused by default,
    # let through with static::mcp_uninspected pass.
    foreach {name mode} {streamable_http reject sse reject streamable_http pass sse pass} {
        h::reset
        h::static mcp_uninspected $mode
        replay $name
        check_one_line_per_message $name
        set lines [lines_of_kind uninspected]
        equal [llength $lines] 1 "$name $mode: one uninspected body"
        equal [dict get [lindex $lines 0] reason] unsized "$name $mode: why"
        equal [dict get [lindex $lines 0] action] [expr {$mode eq "reject" ? "rejected" : "passed"}] "$name $mode: action"
        set refused 0
        foreach cid $::h::conns {
            foreach item [h::client_view $cid] {
                if {[dict get $item kind] eq "response" && [dict get $item local]
                        && [dict get $item status] == 411} {
                    incr refused
                    set reply [::hjson::decode [dict get $item body]]
                    equal [dict get $reply error code] -32600 "$name: the refusal is a JSON-RPC error"
                }
            }
        }
        set forwarded [lsearch -all -glob [forwarded_messages] {*"chunked"*}]
        if {$mode eq "reject"} {
            equal $refused 1 "$name: the chunked POST is answered 411 by the BIG-IP"
            equal $forwarded {} "$name: the chunked POST does not reach the server"
        } else {
            equal $refused 0 "$name: pass lets the chunked POST through"
            equal [llength $forwarded] 1 "$name: the chunked POST reaches the server"
        }
    }
}

case::define ambiguous_requests_refused {
    # A request with two "method" keys (ping first, tools/call of the denied tool last) is
    # refused on every transport: the server never gets it, the client gets -32600 for its id.
    foreach name {websocket sse streamable_http} {
        h::reset
        replay $name
        set refused [lmap f [message_lines] {
            expr {[dict exists $f reason] && [dict get $f reason] eq "duplicate-keys" ? $f : [continue]}}]
        equal [llength $refused] 1 "$name: one request refused for duplicate keys"
        equal [dict get [lindex $refused 0] id] dup "$name: the refused request"
        foreach text [forwarded_messages] {
            check {![string match {*"id": "dup"*} $text]} "$name: the ambiguous request reached the server: $text"
        }
        set answers {}
        foreach text [delivered_messages] {
            foreach m [decoded $text] {
                if {[dict exists $m id] && [dict get $m id] eq "dup"} { lappend answers $m }
            }
        }
        equal [llength $answers] 1 "$name: one answer to the ambiguous request"
        equal [dict get [lindex $answers 0] error code] -32600 "$name: refused as an invalid request"
        check {[string match "*duplicate keys*" [dict get [lindex $answers 0] error message]]} "$name: says why"
    }
}

# --- legacy HTTP+SSE ------------------------------------------------------------------------

case::define sse_one_line_per_message {
    replay sse
    check_one_line_per_message sse
    h::reset
    replay sse_sdk
    check_one_line_per_message sse_sdk
}

proc case::check_sse_persistence {name} {
    set endpoints [lines_of_kind endpoint]
    check {[llength $endpoints] >= 1} "$name: endpoint events seen"
    set sessions 0
    foreach f $endpoints {
        set sid [dict get $f session]
        check {[regexp {^[0-9a-f]{16,}$} $sid]} "$name: the endpoint names a hex session id: $sid"
        equal [dict get $f persist] mcp:$sid "$name: persistence key"
        set member ""
        set posts 0
        foreach entry $::h::lb {
            if {[dict get $entry action] eq "persist-add" && [dict get $entry key] eq "mcp:$sid"} {
                set member [dict get $entry member]
            }
            if {[dict get $entry action] eq "balance" && [dict get $entry key] eq "mcp:$sid"} {
                incr posts
                equal [dict get $entry via] persist "$name: POST [dict get $entry uri] found the record"
                equal [dict get $entry member] $member "$name: POST of session $sid on the stream's member"
            }
        }
        check {$member ne "" && $posts >= 3} "$name: session $sid persisted ($posts POSTs)"
        # The stream was balanced to the very member the record names.
        set stream_member ""
        foreach entry $::h::lb {
            if {[dict get $entry action] eq "balance" && [dict get $entry uri] eq "/sse"
                    && $stream_member eq "" && $member eq [dict get $entry member]} {
                set stream_member $member
            }
        }
        check {$stream_member ne ""} "$name: the record points at the stream's member"
        incr sessions
    }
    # The stream's end removes the record.
    set deleted [lmap e $::h::lb {expr {[dict get $e action] eq "persist-delete" ? [dict get $e key] : [continue]}}]
    check {[llength $deleted] == $sessions} "$name: closing each stream deletes its record ($deleted)"
    return $sessions
}

case::define sse_endpoint_persistence {
    replay sse
    set sessions [check_sse_persistence sse]
    check {$sessions == 2} "our client's session and the raw one"
    # The raw session posts with session_id= instead of sessionId=.
    set spellings {}
    foreach entry $::h::lb {
        if {[dict get $entry action] eq "balance" && [regexp {/message\?(session_?[iI]d)=} [dict get $entry uri] -> p]} {
            lappend spellings $p
        }
    }
    check {"sessionId" in $spellings && "session_id" in $spellings} "both query spellings seen: [lsort -unique $spellings]"
    h::reset
    replay sse_sdk
    check_sse_persistence sse_sdk
}

case::define sse_denied_tool_rewritten_and_relabelled {
    replay sse
    check_denial sse
    h::reset
    replay sse_sdk
    check_denial sse_sdk
    # The stream was never broken: every event the server sent reached the client.
    set sent 0
    foreach m [ref::messages [traffic sse_sdk]] {
        if {[dict get $m dir] eq "s2c"} { incr sent }
    }
    set got 0
    foreach text [delivered_messages] { incr got }
    equal $got $sent "sse_sdk: as many messages delivered as the server sent"
}

case::define sse_bad_bodies_logged_and_forwarded {
    replay sse
    check_bad_bodies sse
}

case::define sse_stream_split_across_chunks {
    # The recording already splits events inside their data line (the proxy forwards them in
    # two segments); replaying with other splits, down to one character, changes nothing.
    set split 0
    foreach ev [dict get [traffic sse] events] {
        if {[dict get $ev type] eq "response_data" && [string match "event: message*" [dict get $ev data]]
                && ![string match "*\n\n" [dict get $ev data]]} {
            incr split
        }
    }
    check {$split >= 5} "events split in the middle in the recording ($split)"
    foreach name {sse sse_sdk streamable_http_sdk} {
        h::reset
        replay $name
        set reference [observed]
        foreach chunk {1 3 7 64} {
            h::reset
            replay $name -chunk $chunk
            equal [observed] $reference "$name: native SSE framing, $chunk-character segments"
        }
    }
}

# TRAFFIC with the answer to the request of id ID turned into a text/event-stream response
# (one message event), as a Streamable HTTP server may answer any POST; the other answers on
# the same connection stay application/json.
proc case::answer_as_sse {traffic id} {
    set events {}
    set pending 0
    foreach ev [dict get $traffic events] {
        if {[dict get $ev type] eq "response_data" && [string match "*\"id\":$id,*" [dict get $ev data]]} {
            dict set ev data "event: message\ndata: [dict get $ev data]\n\n"
            set pending 1
        }
        lappend events $ev
    }
    check {$pending} "a response with id $id in the recording"
    # Rewrite the header of the response that carries it: the last response before it.
    set out {}
    set n [llength $events]
    for {set i 0} {$i < $n} {incr i} {
        set ev [lindex $events $i]
        set next [lindex $events [expr {$i + 1}]]
        if {[dict get $ev type] eq "response" && [dict exists $next data]
                && [string match "event: message\ndata: *\"id\":$id,*" [dict get $next data]]} {
            set headers {}
            foreach h [dict get $ev headers] {
                switch -- [string tolower [lindex $h 0]] {
                    content-type { lappend headers [list Content-Type text/event-stream] }
                    content-length {}
                    default { lappend headers $h }
                }
            }
            dict set ev headers $headers
        }
        lappend out $ev
    }
    dict set traffic events $out
    return $traffic
}

case::define sse_collect_mode_then_json_on_same_connection {
    # A keep-alive connection whose first answer is an SSE stream and whose later answers are
    # JSON: in collect mode the later JSON bodies must not be taken for stream data.
    set traffic [answer_as_sse [traffic streamable_http] 2]
    h::reset
    h::replay $traffic
    no_tcl_errors
    set reference [observed]
    check {[llength [lindex $reference 1]] >= 8} "the JSON answers are delivered in native mode"
    h::reset
    h::static mcp_sse_mode collect
    h::option sse_profile 0
    h::replay $traffic
    no_tcl_errors
    equal [observed] $reference "collect mode: same log and delivery as the sse profile"
}

case::define sse_collect_mode_without_sse_profile {
    # Without the sse profile the rule parses the stream itself; same log, same delivery,
    # whatever the segments, including a CR LF cut in two.
    foreach name {sse streamable_http_sdk} {
        h::reset
        replay $name
        set reference [observed]
        foreach chunk {0 1 2 5 64} {
            h::reset
            h::static mcp_sse_mode collect
            h::option sse_profile 0
            replay $name -chunk $chunk
            equal [observed] $reference "$name: collect-mode SSE, chunks of $chunk"
        }
    }
    set event "event: message\ndata: \{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\{\}\}\n\n"
    set crlf [string map [list "\n" "\r\n"] $event]
    set len [string length $crlf]
    foreach cut [list 0 1 30 [expr {$len - 4}] [expr {$len - 3}] [expr {$len - 2}]] {
        set first [lib [list call mcp_proxy::sse_chunk streamable-http s scope [string range $crlf 0 $cut]]]
        set second [lib [list call mcp_proxy::sse_chunk streamable-http s scope \
            "[lindex $first 1][string range $crlf [expr {$cut + 1}] end]"]]
        equal "[lindex $first 0][lindex $second 0]" $event "CRLF event cut after character $cut"
        equal [lindex $second 1] "" "nothing held back after the event, cut $cut"
    }
    # CR alone may end lines too: cut anywhere, two such events come out whole. (A CR at the
    # very end of a segment is held back, as it may be the first half of a CRLF.)
    set cr [string map [list "\n" "\r"] "$event$event: end\n\n"]
    for {set cut 0} {$cut < [string length $cr] - 1} {incr cut} {
        set first [lib [list call mcp_proxy::sse_chunk sse s scope [string range $cr 0 $cut]]]
        set second [lib [list call mcp_proxy::sse_chunk sse s scope \
            "[lindex $first 1][string range $cr [expr {$cut + 1}] end]"]]
        equal [string range "[lindex $first 0][lindex $second 0]" 0 [expr {2 * [string length $event] - 1}]] \
            "$event$event" "CR-only events cut after character $cut"
    }
    # A comment line and an event without data pass through untouched.
    set r [lib {call mcp_proxy::sse_chunk sse s s ": keepalive\n\nevent: other\ndata: x\n\nretry: 5\n\n"}]
    equal [lindex $r 0] ": keepalive\n\nevent: other\ndata: x\n\nretry: 5\n\n" "comments and other events pass"
}

# --- WebSocket ------------------------------------------------------------------------------

case::define ws_one_line_per_message {
    replay websocket
    check_one_line_per_message websocket
}

case::define ws_denied_tool_rewritten_and_relabelled {
    replay websocket
    check_denial websocket
    # The batch keeps its harmless element and loses only the denied one.
    set batch ""
    foreach text [forwarded_messages] {
        if {[string match {\[*batch-1*} $text]} { set batch [::hjson::decode $text] }
    }
    check {[llength $batch] == 2} "the batch reached the server as a batch: $batch"
    equal [dict get [lindex $batch 0] method] ping "the batch's ping is untouched"
    equal [dict get [lindex $batch 1] method] bigip/denied "the batch's denied call is rewritten"
}

case::define ws_bad_frames_logged_and_forwarded {
    replay websocket
    check_bad_bodies websocket
}

# TRAFFIC with every text frame whose payload matches PATTERN split into two frames (a text
# frame without FIN, then a continuation frame), as RFC 6455 lets any client send a message.
proc case::fragmented {traffic pattern} {
    set out {}
    set n 0
    foreach ev [dict get $traffic events] {
        if {[dict get $ev type] eq "ws_frame" && [dict get $ev opcode] == 1
                && [string match $pattern [dict get $ev payload]]} {
            set payload [dict get $ev payload]
            set cut [expr {[string length $payload] / 2}]
            lappend out [dict replace $ev fin 0 payload [string range $payload 0 [expr {$cut - 1}]]]
            lappend out [dict replace $ev opcode 0 fin 1 payload [string range $payload $cut end]]
            incr n
        } else {
            lappend out $ev
        }
    }
    check {$n > 0} "frames matching $pattern in the recording"
    dict set traffic events $out
    return $traffic
}

case::define ws_fragmented_message_refused_or_passed {
    # WS::collect frame sees one frame: a denied call split over two frames must not reach the
    # server unseen. By default the first fragment is dropped and the WebSocket closed (1008).
    set traffic [fragmented [traffic websocket] {*"tools/call"*"run_command"*}]
    h::replay $traffic
    no_tcl_errors
    set lines [lines_of_kind uninspected]
    check {[llength $lines] >= 1} "the fragmented message is logged: $lines"
    foreach f $lines {
        equal [list [dict get $f dir] [dict get $f transport] [dict get $f reason] [dict get $f action]] \
            {c2s websocket fragmented rejected} "a refused fragment: $f"
    }
    set closed 0
    foreach cid $::h::conns {
        foreach item [h::server_view $cid] {
            if {[dict get $item kind] ne "ws_frame"} { continue }
            check {![string match {*run_command*} [dict get $item payload]]} \
                "no fragment of the denied call reaches the server: $item"
            if {[dict get $item opcode] == 8 && [dict exists $item code]} {
                equal [dict get $item code] 1008 "close code"
                incr closed
            }
        }
    }
    equal $closed [llength $lines] "one close per refused message"
    # With "pass", the fragments are logged and reach the server as they were sent.
    h::reset
    h::static mcp_uninspected pass
    h::replay $traffic
    no_tcl_errors
    foreach f [lines_of_kind uninspected] {
        equal [dict get $f action] passed "a passed fragment: $f"
    }
    set sent {}
    foreach cid $::h::conns {
        foreach item [h::server_view $cid] {
            if {[dict get $item kind] eq "ws_frame" && [dict get $item opcode] in {0 1}} {
                lappend sent [list [dict get $item opcode] [dict get $item fin] [dict get $item payload]]
            }
        }
    }
    set recorded {}
    foreach ev [dict get $traffic events] {
        if {[dict get $ev type] eq "ws_frame" && [dict get $ev from] eq "client" && [dict get $ev opcode] in {0 1}} {
            lappend recorded [list [dict get $ev opcode] [dict get $ev fin] [dict get $ev payload]]
        }
    }
    set fragments [lsearch -all -inline -index 1 $recorded 0]
    check {[llength $fragments] > 0} "fragments in the altered recording"
    foreach frag $fragments {
        check {$frag in $sent} "pass: the fragment reaches the server unchanged: $frag"
    }
}

# --- across transports ----------------------------------------------------------------------

case::define debug_logs_json_trees {
    h::static mcp_debug 1
    replay websocket
    set trees [h::log_lines "MCP tree *"]
    check {[llength $trees] > 100} "tree lines logged ([llength $trees])"
    check {[lsearch -glob $trees "*c2s*method: \"tools/call\""] >= 0} "a request tree"
    check {[lsearch -glob $trees "*s2c*  protocolVersion: *"] >= 0} "a nested result tree"
    set levels [lsort -unique [lmap e $::h::log {lindex $e 3}]]
    equal $levels {local0. local0.debug} "summaries at the default level, trees at debug"
}

case::define conf_matches_rules_and_traffic {
    set conf [h::conf_parse [file join $::case::bigip bigip.conf]]
    set stanzas [dict create]
    foreach {kind body} $conf { dict set stanzas [lrange $kind 0 end-1] [lindex $kind end] $body }
    set virtual [dict get $stanzas {ltm virtual} /Common/mcp_vs]
    set profiles [dict keys [dict get $virtual profiles]]
    foreach {type name} {tcp /Common/mcp_tcp http /Common/mcp_http one-connect /Common/mcp_oneconnect
            websocket /Common/mcp_websocket sse /Common/mcp_sse} {
        check {[dict exists $stanzas [list ltm profile $type] $name]} "profile $type $name is defined"
        check {$name in $profiles} "profile $name is on the virtual"
    }
    equal [string trim [dict get $virtual rules]] /Common/mcp_proxy "the virtual runs mcp_proxy"
    check {[file exists [file join $::case::bigip mcp_proxy.irul]] && [file exists [file join $::case::bigip JSON.irul]]} "both rule files exist"
    set persist [lindex [dict keys [dict get $virtual persist]] 0]
    check {[dict exists $stanzas {ltm persistence universal} $persist]} "universal persistence on the virtual"
    equal [dict get $stanzas {ltm persistence universal} $persist timeout] [dict get $::h::statics mcp_persist_timeout] \
        "persistence timeout matches the rule"
    equal [dict get [dict get $virtual source-address-translation] type] automap "SNAT automap"
    check {[dict get $virtual pool] eq "/Common/mcp_pool"} "the virtual's pool"
    equal [lmap m $::h::members {lindex [split $m :] end}] {8080 8081 8082} "the pool holds the three servers"
    check {"run_command" in [denied_tools]} "run_command is denied by default"
    # The monitor asks what our server answers: its request and recv string, on the recording.
    set monitor [dict get $stanzas {ltm monitor http} /Common/mcp_healthz]
    # tmsh saves the send string with the monitor's escape sequences as text ("\\r\\n" in
    # bigip.conf, \r\n once read); the monitor turns them into CR LF when it sends (K4186).
    set stored [dict get $monitor send]
    check {![regexp {[\r\n]} $stored]} "monitor send string holds escape sequences, not raw CR LF: $stored"
    set sent [subst -nocommands -novariables $stored]
    check {[string match "GET /healthz HTTP/1.1\r\nHost: *\r\n\r\n" $sent]} "monitor send string: $sent"
    set answered 0
    foreach ev [dict get [traffic healthz] events] {
        if {[dict get $ev type] eq "response"} {
            check {[string first [dict get $monitor recv] [dict get $ev status_line]] == 0} \
                "monitor recv '[dict get $monitor recv]' matches '[dict get $ev status_line]'"
            incr answered
        }
    }
    equal $answered 1 "the recorded health check"
}

case::define irule_dialect_and_calls {
    # iRules run Tcl 8.4: nothing newer in the rule files; every call names a defined proc;
    # every event handler is one the device raises.
    set known_events {RULE_INIT CLIENT_ACCEPTED CLIENT_CLOSED HTTP_REQUEST HTTP_REQUEST_DATA
        HTTP_RESPONSE HTTP_RESPONSE_DATA SSE_RESPONSE WS_CLIENT_FRAME WS_CLIENT_DATA
        WS_SERVER_FRAME WS_SERVER_DATA}
    foreach rule {JSON mcp_proxy} {
        set fd [open $::h::rule_files($rule)]
        set lines [split [read $fd] "\n"]
        close $fd
        set n 0
        foreach line $lines {
            incr n
            if {[regexp {^\s*#} $line]} { continue }
            foreach {pattern why} {
                {\mdict\s} "dict (Tcl 8.5)" {\{\*\}} "{*} (Tcl 8.5)" {\mlassign\M} "lassign (Tcl 8.5)"
                {\mlmap\M} "lmap (Tcl 8.6)" {\mtry\s} "try (Tcl 8.6)" {\mapply\M} "apply (Tcl 8.5)"
                {\s(in|ni)\s+\$} "in/ni (Tcl 8.5)" {\mlrepeat\M} "lrepeat (Tcl 8.5)" {\mputs\M} "puts"
                {string cat\M} "string cat (Tcl 8.6.2)"
            } {
                check {![regexp $pattern $line]} "$rule line $n uses $why: [string trim $line]"
            }
            foreach {all target} [regexp -all -inline {(?:\[|^\s*)call\s+([A-Za-z_:]+)} $line] {
                check {[info exists ::h::procs($target)]} "$rule line $n calls undefined '$target'"
            }
            if {[regexp {^\s*log\s+(\S+)} $line -> facility]} {
                check {[string match local0.* $facility]} "$rule line $n logs to $facility"
            }
        }
    }
    foreach item $::h::defined {
        if {[lindex $item 0] eq "event"} {
            check {[lindex $item 2] in $known_events} "unknown event [lindex $item 2]"
        }
    }
}

case::define every_proc_and_event_exercised {
    # Runs every other case and requires that together they ran every proc and every event
    # handler of both rule files on recorded traffic.
    array unset ::h::trace
    array set ::h::trace {}
    foreach name [names] {
        if {$name eq "every_proc_and_event_exercised"} { continue }
        run $name
    }
    set missing {}
    foreach item $::h::defined {
        if {![info exists ::h::trace($item)]} { lappend missing $item }
    }
    equal $missing {} "procs and events never exercised"
    check {[llength $::h::defined] >= 30} "[llength $::h::defined] procs and events defined"
}
