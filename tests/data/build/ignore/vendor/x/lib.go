vendor/x/lib.go
