package apitest

import "testing"

func TestFakeKeepsTheContract(t *testing.T) { Contract(t, New("n1"), "n1") }
