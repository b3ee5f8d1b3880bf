package geokv

/*
#include "geokv/geokv.h"
*/
import "C"

import (
	"context"
	"errors"
)

// Put stores value under key. Embedded: durable per Options.Durability. Connected: the key
// must be strong (linearizable) or lww (acknowledged once durable in the region that took
// it). Errors: ErrInvalid (empty key), ErrKeySize, ErrValueSize, ErrWrongMode, ErrTimeout,
// ErrUnavailable, ErrIO, ErrClosed.
func (db *DB) Put(ctx context.Context, key, value []byte) error {
	k, kn := cBytes(key)
	v, vn := cBytes(value)
	_, err := db.run(ctx, "put", func(h *C.geokv_db_t) C.int { return C.geokv_put(h, k, kn, v, vn) }, nil)
	return err
}

// Get reads key; ErrNotFound when it is absent. Connected: strong keys read linearizably,
// lww and mvreg keys the answering region's replica (mvreg: one of the concurrent values;
// use MVGet for all), a counter as its decimal value; a set key is ErrWrongMode.
func (db *DB) Get(ctx context.Context, key []byte) ([]byte, error) {
	k, kn := cBytes(key)
	var v *C.uint8_t
	var vn C.size_t
	_, err := db.run(ctx, "get", func(h *C.geokv_db_t) C.int {
		rc := C.geokv_get(&v, &vn, h, k, kn)
		if rc == C.GEOKV_OK {
			liveC.Add(1)
		}
		return rc
	}, func() { freeBytes(v) })
	if err != nil {
		return nil, err
	}
	return takeBytes(v, vn), nil
}

// Delete deletes key; deleting an absent key is not an error. Connected: strong, lww and
// mvreg keys.
func (db *DB) Delete(ctx context.Context, key []byte) error {
	k, kn := cBytes(key)
	_, err := db.run(ctx, "delete", func(h *C.geokv_db_t) C.int { return C.geokv_delete(h, k, kn) }, nil)
	return err
}

// CompareAndSwap stores value under a strong key when the key holds expected; a nil
// expected means "when the key is absent" (an empty non-nil slice means an empty value).
// It reports whether it stored the value: false means the current value differs and
// nothing was written. Errors: ErrWrongMode (not a strong key), ErrValueSize, ...
func (db *DB) CompareAndSwap(ctx context.Context, key, expected, value []byte) (bool, error) {
	k, kn := cBytes(key)
	e, en := cBytes(expected)
	v, vn := cBytes(value)
	_, err := db.run(ctx, "cas", func(h *C.geokv_db_t) C.int {
		return C.geokv_cas(h, k, kn, e, en, v, vn)
	}, nil)
	if errors.Is(err, ErrConflict) {
		return false, nil
	}
	return err == nil, err
}

// Add adds delta (may be negative) to a counter and returns its new value. A strong key
// holds a decimal integer (absent is 0; ErrInvalid when it holds something else) and the
// result is linearizable; a counter key (a CRDT) returns the answering region's value
// after the add. ErrWrongMode for other modes.
func (db *DB) Add(ctx context.Context, key []byte, delta int64) (int64, error) {
	k, kn := cBytes(key)
	var result C.int64_t
	_, err := db.run(ctx, "add", func(h *C.geokv_db_t) C.int {
		return C.geokv_add(&result, h, k, kn, C.int64_t(delta))
	}, nil)
	return int64(result), err
}

// SetAdd adds element to the set at key (add wins over a concurrent remove).
func (db *DB) SetAdd(ctx context.Context, key, element []byte) error {
	k, kn := cBytes(key)
	e, en := cBytes(element)
	_, err := db.run(ctx, "set add", func(h *C.geokv_db_t) C.int { return C.geokv_set_add(h, k, kn, e, en) }, nil)
	return err
}

// SetRemove removes element from the set at key (the adds this region has seen); removing
// an absent element is not an error.
func (db *DB) SetRemove(ctx context.Context, key, element []byte) error {
	k, kn := cBytes(key)
	e, en := cBytes(element)
	_, err := db.run(ctx, "set remove", func(h *C.geokv_db_t) C.int { return C.geokv_set_remove(h, k, kn, e, en) }, nil)
	return err
}

// SetContains reports whether the answering region's replica of the set holds element.
func (db *DB) SetContains(ctx context.Context, key, element []byte) (bool, error) {
	k, kn := cBytes(key)
	e, en := cBytes(element)
	var present C.int
	_, err := db.run(ctx, "set contains", func(h *C.geokv_db_t) C.int {
		return C.geokv_set_contains(&present, h, k, kn, e, en)
	}, nil)
	return present != 0, err
}

// SetMembers returns the members of the set at key in byte order (empty when absent), as
// the answering region's replica holds them.
func (db *DB) SetMembers(ctx context.Context, key []byte) ([][]byte, error) {
	k, kn := cBytes(key)
	var l *C.geokv_list_t
	_, err := db.run(ctx, "set members", func(h *C.geokv_db_t) C.int {
		rc := C.geokv_set_members(&l, h, k, kn)
		if rc == C.GEOKV_OK {
			liveC.Add(1)
		}
		return rc
	}, func() { freeList(l) })
	if err != nil {
		return nil, err
	}
	return takeList(l), nil
}

// MVGet reads the multi-value register at key: its concurrent values in byte order (none
// when absent or deleted) and the causal context to pass to the next MVPut or MVDelete so
// that it replaces exactly the values read.
func (db *DB) MVGet(ctx context.Context, key []byte) (values [][]byte, causal []byte, err error) {
	k, kn := cBytes(key)
	var l *C.geokv_list_t
	var c *C.uint8_t
	var cn C.size_t
	_, err = db.run(ctx, "mv get", func(h *C.geokv_db_t) C.int {
		rc := C.geokv_mv_get(&l, &c, &cn, h, k, kn)
		if rc == C.GEOKV_OK {
			liveC.Add(2)
		}
		return rc
	}, func() { freeList(l); freeBytes(c) })
	if err != nil {
		return nil, nil, err
	}
	return takeList(l), takeBytes(c, cn), nil
}

// MVPut writes value to the multi-value register at key, replacing the values causal
// (from MVGet; nil for none) covers; concurrent writes elsewhere stay as siblings.
func (db *DB) MVPut(ctx context.Context, key, value, causal []byte) error {
	k, kn := cBytes(key)
	v, vn := cBytes(value)
	c, cn := cBytes(causal)
	_, err := db.run(ctx, "mv put", func(h *C.geokv_db_t) C.int {
		return C.geokv_mv_put(h, k, kn, v, vn, c, cn)
	}, nil)
	return err
}

// MVDelete removes the values of the multi-value register at key that causal covers.
func (db *DB) MVDelete(ctx context.Context, key, causal []byte) error {
	k, kn := cBytes(key)
	c, cn := cBytes(causal)
	_, err := db.run(ctx, "mv delete", func(h *C.geokv_db_t) C.int { return C.geokv_mv_delete(h, k, kn, c, cn) }, nil)
	return err
}

// Mode is a replication mode of the cluster's policy.
type Mode string

const (
	Strong  Mode = "strong"  // Multi-Paxos, linearizable
	LWW     Mode = "lww"     // last-writer-wins register
	MVReg   Mode = "mvreg"   // multi-value register
	Counter Mode = "counter" // PN-counter
	Set     Mode = "set"     // add-wins observed-remove set
)

// Rule is one entry of the policy: keys that begin with Prefix use Mode.
type Rule struct {
	Prefix []byte
	Mode   Mode
}

// PolicySet makes keys that begin with prefix use mode; an empty prefix sets the default
// mode. Once it returns, every node routes by it. ErrInvalid for an unknown mode or a
// prefix that holds data in another mode.
func (db *DB) PolicySet(ctx context.Context, prefix []byte, mode Mode) error {
	p, pn := cBytes(prefix)
	_, err := db.run(ctx, "policy set", func(h *C.geokv_db_t) C.int {
		// Made and freed inside the call: an abandoned call still reads it.
		cmode := cString(string(mode))
		defer freeCString(cmode)
		return C.geokv_policy_set(h, p, pn, cmode)
	}, nil)
	return err
}

// NodeSetState (admin) sets node's state in the cluster map: "draining" (it hands every
// leadership it holds to other regions, e.g. before a restart), "up", "down" or "removed"
// (docs/operations.md). Idempotent. ErrInvalid for another state or a transition the map
// forbids, ErrNotFound for an unknown node, ErrConflict for removing a node that holds
// replicas, ErrPermission without an admin identity, ErrTimeout when the outcome is
// unknown (repeat it).
func (db *DB) NodeSetState(ctx context.Context, node uint32, state string) error {
	_, err := db.run(ctx, "node set state", func(h *C.geokv_db_t) C.int {
		// Made and freed inside the call: an abandoned call still reads it.
		cstate := cString(state)
		defer freeCString(cstate)
		return C.geokv_node_set_state(h, C.uint32_t(node), cstate)
	}, nil)
	return err
}

// PolicyRemove removes the rule for exactly prefix; ErrNotFound when there is none.
func (db *DB) PolicyRemove(ctx context.Context, prefix []byte) error {
	p, pn := cBytes(prefix)
	_, err := db.run(ctx, "policy remove", func(h *C.geokv_db_t) C.int { return C.geokv_policy_remove(h, p, pn) }, nil)
	return err
}

// PolicyList returns the policy: first the default (empty prefix), then the rules in
// prefix order.
func (db *DB) PolicyList(ctx context.Context) ([]Rule, error) {
	var prefixes, modes *C.geokv_list_t
	_, err := db.run(ctx, "policy list", func(h *C.geokv_db_t) C.int {
		rc := C.geokv_policy_list(&prefixes, &modes, h)
		if rc == C.GEOKV_OK {
			liveC.Add(2)
		}
		return rc
	}, func() { freeList(prefixes); freeList(modes) })
	if err != nil {
		return nil, err
	}
	ps, ms := takeList(prefixes), takeList(modes)
	rules := make([]Rule, len(ps))
	for i := range ps {
		rules[i] = Rule{Prefix: ps[i], Mode: Mode(ms[i])}
	}
	return rules, nil
}

// Status returns the answering node's view of the cluster as lines for people to read
// (the format may change).
func (db *DB) Status(ctx context.Context) ([]string, error) {
	var l *C.geokv_list_t
	_, err := db.run(ctx, "status", func(h *C.geokv_db_t) C.int {
		rc := C.geokv_status(&l, h)
		if rc == C.GEOKV_OK {
			liveC.Add(1)
		}
		return rc
	}, func() { freeList(l) })
	if err != nil {
		return nil, err
	}
	lines := takeList(l)
	out := make([]string, len(lines))
	for i, b := range lines {
		out[i] = string(b)
	}
	return out, nil
}
