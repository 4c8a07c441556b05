# json.tcl - a small strict JSON parser in pure Tcl 8.6, and the emulation of BIG-IP 21's
# JSON:: iRule commands on top of it.
#
# Theory of operation
# -------------------
# `::hjson::parse TEXT` parses RFC 8259 JSON into a node store and returns the root node id.
# A node is a two-element list {TYPE VALUE}; TYPE uses BIG-IP's vocabulary:
#   null     VALUE is ""
#   boolean  VALUE is 1 or 0
#   integer  VALUE is the decimal text (fits in a signed 64-bit integer)
#   literal  VALUE is the number text (any other number: fraction, exponent, huge)
#   string   VALUE is the decoded string
#   object   VALUE is a flat list {key child-id key child-id ...} in document order
#   array    VALUE is a list of child ids
# Errors are Tcl errors whose message starts with "json:" and names the offset.
#
# The JSON:: emulation hands out handles that are plain strings, as the BIG-IP does:
#   json_cache<N>  a parse result (JSON::parse)
#   json_elem<N>   an element, i.e. a value of any type (JSON::root, JSON::object get ...)
#   json_obj<N>    an object handle (JSON::get ELEM object)
#   json_arr<N>    an array handle  (JSON::get ELEM array)
# Passing the wrong kind of handle is an error, and so is JSON::get with a type that does not
# match, JSON::object get of a missing key and an array index out of range: the real commands
# are documented to fail on a type mismatch, and for the rest the harness is deliberately
# stricter than the device so that the iRules cannot come to depend on lenient behaviour.
#
# `::hjson::totcl NODE` converts a node tree to plain Tcl values (objects become dicts) for the
# harness' own use, e.g. loading traffic files. `::hjson::render NODE` renders compact JSON.

namespace eval ::hjson {
    variable nodes
    array set nodes {}
    variable next 0
    variable caches
    array set caches {}
    variable ncache 0
    # parser state (the parser is not re-entrant, which is fine for a test harness)
    variable T ""
    variable P 0
    variable L 0
    variable tokens 0
    variable maxTokens 0
    variable depth 0
    variable maxDepth 512
}

proc ::hjson::Fail {msg} {
    variable P
    return -code error "json: $msg at offset $P"
}

proc ::hjson::New {type value} {
    variable nodes
    variable next
    incr next
    set nodes($next) [list $type $value]
    return $next
}

proc ::hjson::Ws {} {
    variable T
    variable P
    if {[regexp -start $P -indices {\A[ \t\r\n]+} $T m]} {
        set P [expr {[lindex $m 1] + 1}]
    }
}

proc ::hjson::Token {} {
    variable tokens
    variable maxTokens
    incr tokens
    if {$maxTokens > 0 && $tokens > $maxTokens} {
        Fail "too many tokens (limit $maxTokens)"
    }
}

# parse TEXT ?MAXTOKENS? -> root node id
proc ::hjson::parse {text {maxTokens 0}} {
    variable T $text
    variable P 0
    variable L [string length $text]
    variable tokens 0
    variable depth 0
    set ::hjson::maxTokens $maxTokens
    Ws
    if {$P >= $L} { Fail "empty input" }
    set root [Value]
    Ws
    if {$P < $L} { Fail "unexpected trailing data" }
    return $root
}

proc ::hjson::Value {} {
    variable T
    variable P
    variable L
    variable depth
    variable maxDepth
    Token
    set c [string index $T $P]
    switch -- $c {
        "\{" {
            if {[incr depth] > $maxDepth} { Fail "nesting too deep" }
            incr P
            set members {}
            Ws
            if {[string index $T $P] eq "\}"} {
                incr P
                incr depth -1
                return [New object {}]
            }
            while 1 {
                Ws
                if {[string index $T $P] ne "\""} { Fail "expected a string key" }
                set key [String]
                Ws
                if {[string index $T $P] ne ":"} { Fail "expected ':'" }
                incr P
                Ws
                lappend members $key [Value]
                Ws
                set c [string index $T $P]
                incr P
                if {$c eq ","} { continue }
                if {$c eq "\}"} { break }
                incr P -1
                Fail "expected ',' or '\}' in object"
            }
            incr depth -1
            return [New object $members]
        }
        "\[" {
            if {[incr depth] > $maxDepth} { Fail "nesting too deep" }
            incr P
            set items {}
            Ws
            if {[string index $T $P] eq "\]"} {
                incr P
                incr depth -1
                return [New array {}]
            }
            while 1 {
                Ws
                lappend items [Value]
                Ws
                set c [string index $T $P]
                incr P
                if {$c eq ","} { continue }
                if {$c eq "\]"} { break }
                incr P -1
                Fail "expected ',' or '\]' in array"
            }
            incr depth -1
            return [New array $items]
        }
        "\"" {
            return [New string [String]]
        }
        "t" {
            if {[string range $T $P [expr {$P + 3}]] eq "true"} {
                incr P 4
                return [New boolean 1]
            }
        }
        "f" {
            if {[string range $T $P [expr {$P + 4}]] eq "false"} {
                incr P 5
                return [New boolean 0]
            }
        }
        "n" {
            if {[string range $T $P [expr {$P + 3}]] eq "null"} {
                incr P 4
                return [New null {}]
            }
        }
        default {
            if {[regexp -start $P -indices \
                    {\A-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?} $T m frac exp]} {
                set text [string range $T [lindex $m 0] [lindex $m 1]]
                set P [expr {[lindex $m 1] + 1}]
                if {[lindex $frac 0] < 0 && [lindex $exp 0] < 0
                        && $text >= -9223372036854775808 && $text <= 9223372036854775807} {
                    return [New integer $text]
                }
                return [New literal $text]
            }
        }
    }
    if {$P >= $L} { Fail "unexpected end of input" }
    Fail "unexpected character '[string index $T $P]'"
}

# String: at an opening quote; returns the decoded string and moves past the closing quote.
proc ::hjson::String {} {
    variable T
    variable P
    if {![regexp -start $P -indices {\A"((?:[^"\\]|\\.)*)"} $T m inner]} {
        Fail "unterminated string"
    }
    set raw [string range $T [lindex $inner 0] [lindex $inner 1]]
    if {[regexp {[\x00-\x1f]} $raw]} { Fail "control character in string" }
    set P [expr {[lindex $m 1] + 1}]
    if {[string first "\\" $raw] < 0} {
        return $raw
    }
    foreach {all esc} [regexp -all -inline {\\(u[0-9a-fA-F]{0,4}|.)} $raw] {
        if {[string index $esc 0] eq "u"} {
            if {[string length $esc] != 5} { Fail "bad \\u escape" }
        } elseif {[string first $esc "\"\\/bfnrt"] < 0} {
            Fail "bad escape \\$esc"
        }
    }
    return [subst -nocommands -novariables $raw]
}

# --- helpers for the harness ------------------------------------------------------------

proc ::hjson::node {id} {
    variable nodes
    if {![info exists nodes($id)]} { return -code error "json: no such node $id" }
    return $nodes($id)
}

proc ::hjson::totcl {id} {
    lassign [node $id] type value
    switch -- $type {
        object {
            set d [dict create]
            foreach {k v} $value { dict set d $k [totcl $v] }
            return $d
        }
        array {
            set l {}
            foreach v $value { lappend l [totcl $v] }
            return $l
        }
        boolean { return $value }
        null { return "" }
        default { return $value }
    }
}

# decode TEXT -> plain Tcl value (dicts and lists)
proc ::hjson::decode {text} {
    return [totcl [parse $text]]
}

proc ::hjson::quote {s} {
    set s [string map {\\ \\\\ \" \\\" \n \\n \r \\r \t \\t \b \\b \f \\f} $s]
    if {[regexp {[\x00-\x1f]} $s]} {
        set out ""
        foreach c [split $s ""] {
            scan $c %c code
            if {$code < 32} { append out [format "\\u%04x" $code] } else { append out $c }
        }
        set s $out
    }
    return "\"$s\""
}

# render NODE -> compact JSON text (canonical form used to compare trees)
proc ::hjson::render {id} {
    lassign [node $id] type value
    switch -- $type {
        null { return null }
        boolean { return [expr {$value ? "true" : "false"}] }
        integer - literal { return $value }
        string { return [quote $value] }
        object {
            set parts {}
            foreach {k v} $value { lappend parts "[quote $k]:[render $v]" }
            return "\{[join $parts ,]\}"
        }
        array {
            set parts {}
            foreach v $value { lappend parts [render $v] }
            return "\[[join $parts ,]\]"
        }
    }
}

# --- BIG-IP JSON:: command emulation ----------------------------------------------------

proc ::hjson::Handle {kind handle} {
    if {![regexp "^json_${kind}(\[0-9\]+)\$" $handle -> id]} {
        return -code error "JSON: '$handle' is not a JSON $kind handle"
    }
    if {$kind eq "cache"} {
        variable caches
        if {![info exists caches($id)]} { return -code error "JSON: stale cache handle '$handle'" }
        return $id
    }
    node $id
    return $id
}

# Converts a node to the Tcl value JSON::get returns for it.
proc ::hjson::Content {id} {
    lassign [node $id] type value
    switch -- $type {
        object { return json_obj$id }
        array { return json_arr$id }
        default { return $value }
    }
}

proc ::hjson::CheckType {id want} {
    set have [lindex [node $id] 0]
    if {$want ni {null boolean integer literal string object array}} {
        return -code error "JSON: unknown type '$want'"
    }
    if {$have ne $want} {
        return -code error "JSON: element is of type '$have', not '$want'"
    }
}

proc ::hjson::cmd_parse {args} {
    variable caches
    variable ncache
    if {[llength $args] < 1 || [llength $args] > 2} {
        return -code error "wrong # args: JSON::parse JSON_STRING ?MAX_ENTRIES?"
    }
    set max 0
    if {[llength $args] == 2} { set max [expr {3 * [lindex $args 1]}] }
    set root [parse [lindex $args 0] $max]
    incr ncache
    set caches($ncache) $root
    return json_cache$ncache
}

proc ::hjson::cmd_root {cache} {
    variable caches
    return json_elem$caches([Handle cache $cache])
}

proc ::hjson::cmd_type {elem} {
    return [lindex [node [Handle elem $elem]] 0]
}

proc ::hjson::cmd_get {elem args} {
    set id [Handle elem $elem]
    if {[llength $args] > 1} { return -code error "wrong # args: JSON::get ELEMENT ?TYPE?" }
    if {[llength $args] == 1} { CheckType $id [lindex $args 0] }
    return [Content $id]
}

proc ::hjson::ObjectEntries {obj} {
    return [lindex [node [Handle obj $obj]] 1]
}

proc ::hjson::cmd_object {sub obj args} {
    set entries [ObjectEntries $obj]
    switch -- $sub {
        keys {
            set keys {}
            foreach {k v} $entries { lappend keys $k }
            return $keys
        }
        size {
            if {[llength $args] == 0} { return [expr {[llength $entries] / 2}] }
            set n 0
            foreach {k v} $entries { if {$k eq [lindex $args 0]} { incr n } }
            return $n
        }
        type - get {
            set key [lindex $args 0]
            foreach {k v} $entries {
                if {$k eq $key} {
                    if {$sub eq "type"} { return [lindex [node $v] 0] }
                    if {[llength $args] == 2} {
                        CheckType $v [lindex $args 1]
                        return [Content $v]
                    }
                    return json_elem$v
                }
            }
            return -code error "JSON::object $sub: no key '$key'"
        }
        values {
            set out {}
            foreach {k v} $entries {
                if {[llength $args] == 0 || $k eq [lindex $args 0]} { lappend out json_elem$v }
            }
            return $out
        }
        default { return -code error "JSON::object: subcommand '$sub' is not emulated" }
    }
}

proc ::hjson::cmd_array {sub arr args} {
    set items [lindex [node [Handle arr $arr]] 1]
    switch -- $sub {
        size { return [llength $items] }
        type - get {
            set index [lindex $args 0]
            if {![string is integer -strict $index] || $index < 0 || $index >= [llength $items]} {
                return -code error "JSON::array $sub: index '$index' out of range"
            }
            set v [lindex $items $index]
            if {$sub eq "type"} { return [lindex [node $v] 0] }
            if {[llength $args] == 2} {
                CheckType $v [lindex $args 1]
                return [Content $v]
            }
            return json_elem$v
        }
        values {
            set out {}
            foreach v $items { lappend out json_elem$v }
            return $out
        }
        default { return -code error "JSON::array: subcommand '$sub' is not emulated" }
    }
}

# Element handle -> node id, for assertions.
proc ::hjson::elem_node {elem} {
    return [Handle elem $elem]
}
