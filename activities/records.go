package activities

import "github.com/lethe-privacy/lethe/internal/store"

// Lethe's records of requests (lethe.requests, the verification codes, the
// erasure steps, the inactivity notices) are read and written through
// package store only: the activities hold no SQL on Lethe's own tables.

// records is the store of Lethe's request records, in Lethe's database.
func (l *Lifecycle) records() *store.Store { return store.New(l.DB) }

// records is the store of Lethe's request records, in Lethe's database.
func (e *Erasure) records() *store.Store { return store.New(e.Lethe) }
