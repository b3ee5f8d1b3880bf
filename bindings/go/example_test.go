package geokv_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	geokv "geokv/bindings/go"
)

func Example() {
	dir, err := os.MkdirTemp("", "geokv-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := geokv.Open(dir, &geokv.Options{Durability: geokv.DurabilitySync})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	for _, name := range []string{"ada", "grace"} {
		if err := db.Put(ctx, []byte("user/"+name), []byte(name+"@example.org")); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := db.Get(ctx, []byte("user/alan")); errors.Is(err, geokv.ErrNotFound) {
		fmt.Println("user/alan: not found")
	}
	for e, err := range db.Scan(ctx, []byte("user/")) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s = %s\n", e.Key, e.Value)
	}
	// Output:
	// user/alan: not found
	// user/ada = ada@example.org
	// user/grace = grace@example.org
}

// A cluster started with `geokv local` (not run: it needs one).
func ExampleConnect() {
	db, err := geokv.Connect([]string{"tcp://127.0.0.1:7200", "tcp://127.0.0.1:7201"}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second) // the request timeout
	defer cancel()
	if err := db.Put(ctx, []byte("owner"), []byte("ada")); err != nil { // a strong key
		log.Fatal(err)
	}
	swapped, err := db.CompareAndSwap(ctx, []byte("owner"), []byte("ada"), []byte("grace"))
	fmt.Println(swapped, err)
	hits, err := db.Add(ctx, []byte("counter/hits"), 1) // a CRDT counter, per the policy
	fmt.Println(hits, err)
	if err := db.SetAdd(ctx, []byte("owner"), []byte("x")); errors.Is(err, geokv.ErrWrongMode) {
		fmt.Println("owner is not a set")
	}
}
