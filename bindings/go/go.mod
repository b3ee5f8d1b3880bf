module geokv/bindings/go

go 1.23
