package mdb

import (
	"encoding/json"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/internal/badgerkv"
)

// An order request names its targets in one of three ways (target,
// targets, selector; checkOrderRequest makes sure it is exactly one).
// Each way calls visit with every target in the request's order (a
// selector's: by id) and a label that says how the request named it, for
// errors; visit's first error stops the walk and is returned.

// selectTargets walks the targets req names or sel selects.
func selectTargets(txn *badger.Txn, req api.OrderRequest, sel api.Selector, visit func(label string, t api.Target) error) error {
	switch {
	case req.Target != "":
		return targetByID(txn, req.Target, visit)
	case len(req.Targets) > 0:
		return targetsByIDs(txn, req.Targets, visit)
	default:
		return targetsBySelector(txn, req.Selector, sel, visit)
	}
}

// targetByID visits the one target id.
func targetByID(txn *badger.Txn, id string, visit func(string, api.Target) error) error {
	t, err := getTarget(txn, id)
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	return visit("target ", t)
}

// targetsByIDs visits every target of ids, refusing a missing or repeated id.
func targetsByIDs(txn *badger.Txn, ids []string, visit func(string, api.Target) error) error {
	seen := map[string]int{}
	for i, id := range ids {
		label := fmt.Sprintf("targets[%d] ", i)
		if j, dup := seen[id]; dup {
			return fmt.Errorf("%w: %s%s: also targets[%d]", ErrInvalid, label, id, j)
		}
		seen[id] = i
		var t api.Target
		ok, err := badgerkv.GetJSON(txn, k(pTarget, id), &t)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: %s%s: no such target", ErrNotFound, label, id)
		}
		if err := visit(label, t); err != nil {
			return err
		}
	}
	return nil
}

// targetsBySelector visits every target whose labels sel matches
// (spelled as text, for the error when it matches none).
func targetsBySelector(txn *badger.Txn, text string, sel api.Selector, visit func(string, api.Target) error) error {
	n := 0
	err := scan(txn, pTarget, "", true, func(_ []byte, item *badger.Item) (bool, error) {
		var t api.Target
		if err := item.Value(func(b []byte) error { return json.Unmarshal(b, &t) }); err != nil {
			return false, err
		}
		if !sel.Matches(t.Labels) {
			return true, nil
		}
		n++
		return true, visit("target ", t)
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: selector %q matches no target", ErrNotFound, text)
	}
	return nil
}
