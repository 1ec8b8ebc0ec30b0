package node

import (
	"errors"
	"strings"
	"testing"

	"github.com/ballast-io/ballast/pool/api"
)

func TestPlace(t *testing.T) {
	pools := []candidate{
		{Pool: "a1", Node: "a", Capacity: 100, Allocated: 90},
		{Pool: "a2", Node: "a", Capacity: 100, Allocated: 10},
		{Pool: "b1", Node: "b", Capacity: 100, Allocated: 50},
		{Pool: "c1", Node: "c", Capacity: 10},
	}
	got, err := place(pools, 2, 50)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Pool != "a2" || got[1].Pool != "b1" {
		t.Errorf("want most-free pools on distinct nodes a2,b1; got %+v", got)
	}
	got, err = place(pools, 3, 50)
	if err != nil || got[2].Pool != "a1" {
		t.Errorf("third replica must fall back to another pool of a used node: %+v %v", got, err)
	}
	if _, err := place(pools, 5, 1); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "has 4") {
		t.Errorf("repl above pool count: %v", err)
	}
	if _, err := place(pools, 1, 1000); !errors.Is(err, api.ErrNoCapacity) || !strings.Contains(err.Error(), "can ever hold") {
		t.Errorf("too large: %v", err)
	}
	if _, err := place(pools, 4, 50); !errors.Is(err, api.ErrNoCapacity) {
		t.Errorf("not enough pools that fit: %v", err)
	}
}
