# reference.tcl - what the recorded traffic contains, worked out without the iRules.
#
# The cases compare what the rules log and do against this independent reading of the same
# traffic: `ref::messages TRAFFIC` lists every JSON-RPC message in it (request bodies to /mcp and
# /message, JSON response bodies of /mcp, "message" events of SSE streams, WebSocket text
# frames), each classified by `ref::classify` straight from the JSON grammar of JSON-RPC 2.0.

namespace eval ::ref {}

# classify TEXT -> list of dicts {kind id method tool}, one per message (a batch gives several;
# unparseable text gives one invalid_json, a scalar or empty array one not_jsonrpc).
proc ref::classify {text} {
    if {[catch {::hjson::parse $text} root]} {
        return [list [dict create kind invalid_json id "" method "" tool "" ambiguous 0]]
    }
    lassign [::hjson::node $root] type value
    if {$type eq "object"} {
        set elements [list $root]
    } elseif {$type eq "array" && [llength $value]} {
        set elements $value
    } else {
        return [list [dict create kind not_jsonrpc id "" method "" tool "" ambiguous 0]]
    }
    set out {}
    foreach element $elements { lappend out [classify_element $element] }
    return $out
}

proc ref::member {node key} {
    lassign [::hjson::node $node] type value
    if {$type ne "object"} { return "" }
    foreach {k v} $value { if {$k eq $key} { return $v } }
    return ""
}

proc ref::scalar {node} {
    if {$node eq ""} { return "" }
    lassign [::hjson::node $node] type value
    if {$type eq "null"} { return null }
    if {$type in {object array}} { return "" }
    return $value
}

proc ref::type {node} {
    if {$node eq ""} { return "" }
    return [lindex [::hjson::node $node] 0]
}

# count NODE KEY -> how many times KEY appears in the object NODE.
proc ref::count {node key} {
    lassign [::hjson::node $node] type value
    set n 0
    if {$type eq "object"} {
        foreach {k v} $value { if {$k eq $key} { incr n } }
    }
    return $n
}

proc ref::classify_element {node} {
    set d [dict create kind not_jsonrpc id "" method "" tool "" ambiguous 0]
    if {[type $node] ne "object"} { return $d }
    foreach key {jsonrpc id method params} {
        if {[count $node $key] > 1} { dict set d ambiguous 1 }
    }
    set params [member $node params]
    if {[type $params] eq "object" && ([count $params name] > 1 || [count $params arguments] > 1)} {
        dict set d ambiguous 1
    }
    set version [member $node jsonrpc]
    set id [member $node id]
    set method [member $node method]
    dict set d id [scalar $id]
    if {[type $version] ne "string" || [scalar $version] ne "2.0"} { return $d }
    if {[type $method] eq "string"} {
        dict set d method [scalar $method]
        dict set d kind [expr {$id eq "" ? "notification" : "request"}]
        if {[scalar $method] eq "tools/call"} {
            set name [member [member $node params] name]
            if {[type $name] eq "string"} { dict set d tool [scalar $name] }
        }
    } elseif {$id ne "" && [member $node result] ne ""} {
        dict set d kind result
    } elseif {$id ne "" && [type [member $node error]] eq "object"} {
        dict set d kind error
    }
    return $d
}

# sse_events TEXT -> list of {event data} for the complete events of an event stream.
proc ref::sse_events {text} {
    set out {}
    set text [string map [list "\r\n" "\n" "\r" "\n"] $text]
    while {[set end [string first "\n\n" $text]] >= 0} {
        set block [string range $text 0 [expr {$end - 1}]]
        set text [string range $text [expr {$end + 2}] end]
        set event message
        set data {}
        foreach line [split $block "\n"] {
            if {[string index $line 0] eq ":"} { continue }
            regexp {^([^:]*):? ?(.*)$} $line -> name value
            if {$name eq "event"} { set event $value }
            if {$name eq "data"} { lappend data $value }
        }
        # No data, or empty data (keep-alives, stream priming): no message.
        if {[join $data "\n"] ne ""} { lappend out [list $event [join $data "\n"]] }
    }
    return $out
}

proc ref::transport_of {path} {
    switch -- $path {
        /mcp { return streamable-http }
        /sse - /message - /messages { return sse }
        /ws { return websocket }
    }
    return ""
}

# messages TRAFFIC -> list of dicts {dir transport conn text sized}.
proc ref::messages {traffic} {
    set out {}
    array set queue {}
    array set body {}
    array set path {}
    array set ctype {}
    array set sized {}
    foreach ev [dict get $traffic events] {
        set cid [dict get $ev conn]
        switch -- [dict get $ev type] {
            request {
                set p [lindex [split [dict get $ev uri] ?] 0]
                lappend queue($cid) $p
                set t [transport_of $p]
                if {[dict get $ev method] eq "POST" && $t ne "" && [dict get $ev body] ne ""} {
                    lappend out [dict create dir c2s transport $t conn $cid text [dict get $ev body] \
                        sized [Sized [dict get $ev headers]]]
                }
            }
            response {
                set queue($cid) [lassign $queue($cid) path($cid)]
                set ctype($cid) [::h::cmd::HeaderValue [dict get $ev headers] Content-Type]
                set sized($cid) [Sized [dict get $ev headers]]
                set body($cid) ""
            }
            response_data { append body($cid) [dict get $ev data] }
            response_end - close {
                if {![info exists path($cid)] || $path($cid) eq ""} { continue }
                set t [transport_of $path($cid)]
                if {$t ne "" && [string match application/json* $ctype($cid)] && $body($cid) ne ""} {
                    lappend out [dict create dir s2c transport $t conn $cid text $body($cid) sized $sized($cid)]
                }
                if {$t ne "" && [string match text/event-stream* $ctype($cid)]} {
                    foreach event [sse_events $body($cid)] {
                        if {[lindex $event 0] eq "message"} {
                            lappend out [dict create dir s2c transport $t conn $cid text [lindex $event 1] sized 1]
                        }
                    }
                }
                set path($cid) ""
            }
            ws_frame {
                if {[dict get $ev opcode] == 1} {
                    set dir [expr {[dict get $ev from] eq "client" ? "c2s" : "s2c"}]
                    lappend out [dict create dir $dir transport websocket conn $cid text [dict get $ev payload] sized 1]
                }
            }
        }
    }
    return $out
}

# Sized HEADERS -> 1 when a body has a Content-Length (a rule can collect it), else 0.
proc ref::Sized {headers} {
    return [expr {[::h::cmd::HeaderValue $headers Content-Length] ne ""}]
}

# entries TRAFFIC -> one dict per JSON-RPC message: {dir transport kind id method tool}; a
# body without Content-Length gives one "uninspected" entry.
proc ref::entries {traffic} {
    set out {}
    foreach m [messages $traffic] {
        if {![dict get $m sized]} {
            set ids [lmap c [classify [dict get $m text]] {dict get $c id}]
            lappend out [dict create kind uninspected id "" method "" tool "" ids $ids \
                dir [dict get $m dir] transport [dict get $m transport]]
            continue
        }
        foreach c [classify [dict get $m text]] {
            lappend out [dict merge $c [dict create dir [dict get $m dir] transport [dict get $m transport]]]
        }
    }
    return $out
}
