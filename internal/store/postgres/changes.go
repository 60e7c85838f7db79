package postgres

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The knowledge-base generation is a counter row; PublishChange increments it and notifies
// the channel in the same statement (a notification is delivered when its transaction
// commits). Every replica LISTENs and drops its answer cache on another replica's
// notification. Notifications are not stored: a replica whose listening connection dropped
// compares the counter with the last value it saw when it reconnects, and the counter is
// also polled, so a lost notification delays an invalidation by at most pollChanges.

const (
	changesChannel = "rag_knowledge"
	pollChanges    = 5 * time.Second
)

// PublishChange records that the knowledge base changed.
func (s *Store) PublishChange(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `WITH g AS (UPDATE knowledge SET generation = generation + 1 RETURNING generation)
		SELECT pg_notify($1, $2 || ' ' || generation) FROM g`, changesChannel, s.id)
	return err
}

// WatchChanges calls onChange for each change another replica publishes until ctx ends.
func (s *Store) WatchChanges(ctx context.Context, onChange func()) {
	last := int64(-1)
	for ctx.Err() == nil {
		err := s.watch(ctx, &last, onChange)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("Lost the database's change notifications; reconnecting", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (s *Store) watch(ctx context.Context, last *int64, onChange func()) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+changesChannel); err != nil {
		return err
	}
	// Listening from here on; a change published before is caught by comparing counters.
	check := func() error {
		var gen int64
		if err := conn.QueryRow(ctx, `SELECT generation FROM knowledge`).Scan(&gen); err != nil {
			return err
		}
		if *last >= 0 && gen != *last {
			onChange()
		}
		*last = gen
		return nil
	}
	if err := check(); err != nil {
		return err
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, pollChanges)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && wctx.Err() != nil: // the poll interval passed
			if err := check(); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			from, genText, _ := strings.Cut(n.Payload, " ")
			gen, _ := strconv.ParseInt(genText, 10, 64)
			if from != s.id {
				onChange()
			}
			*last = max(*last, gen)
		}
	}
}
