package spec

// Name is a volume name that passed ValidateName. Only ParseName and
// MustName make one, so the layers a volume's name goes through on a node
// (the frontend, the exporter, which turns it into a directory and a file
// path) take a Name and need not check it again.
type Name struct{ s string }

// ParseName checks s as a volume name (ValidateName) and returns it as a
// Name.
func ParseName(s string) (Name, error) {
	if err := ValidateName("volume name", s); err != nil {
		return Name{}, err
	}
	return Name{s}, nil
}

// MustName is ParseName for names known to be valid (constants in tests,
// names read back from records that were checked when written); it panics
// on an invalid one.
func MustName(s string) Name {
	n, err := ParseName(s)
	if err != nil {
		panic(err)
	}
	return n
}

// String is the name.
func (n Name) String() string { return n.s }

// IsZero says whether n is the zero Name, which names nothing.
func (n Name) IsZero() bool { return n.s == "" }
