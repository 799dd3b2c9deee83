//go:build nodev

package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// This binary was built for production (-tags nodev): no embedded stack.
func devCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "dev",
		Short:  "Not in this build (built with -tags nodev)",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("this binary was built with -tags nodev; run `go run ./starter dev` from a source checkout")
		},
	}
}
