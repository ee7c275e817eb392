vendor/x/lib_test.go
