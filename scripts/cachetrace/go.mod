module github.com/txfs/txfs/scripts/cachetrace

go 1.26.0

require github.com/txfs/txfs v0.0.0

require github.com/maypok86/otter/v2 v2.4.0

replace github.com/txfs/txfs => ../..
