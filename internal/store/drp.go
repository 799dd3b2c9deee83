package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// DRP agents, their requests and the replay record: lethe.drp_agents,
// lethe.drp_requests and lethe.drp_seen (migration 014).

// ErrNoAgent is returned (wrapped) for an agent that is not registered, or revoked.
var ErrNoAgent = errors.New("store: no such DRP agent")

// DRPAgent is an authorized agent the privacy team registered.
type DRPAgent struct {
	ID, Name           string
	VerifyKey          []byte // Ed25519 public key
	CallbackURL        string // the origin status callbacks may go to; "" none
	TrustVerifiedEmail bool   // an email_verified claim counts as verified
	HasToken           bool
	TokenIssuedAt      *time.Time
	CreatedAt          time.Time
	RevokedAt          *time.Time
}

// PutDRPAgent registers an agent, or replaces its key and settings (a
// revoked agent is registered again). A changed key voids its token.
func (s *Store) PutDRPAgent(ctx context.Context, a DRPAgent) error {
	_, err := s.db.Exec(ctx, `
		INSERT INTO lethe.drp_agents (id, name, verify_key, callback_url, trust_verified_email)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, verify_key = EXCLUDED.verify_key,
			callback_url = EXCLUDED.callback_url, trust_verified_email = EXCLUDED.trust_verified_email,
			revoked_at = NULL,
			token_hash = CASE WHEN lethe.drp_agents.verify_key = EXCLUDED.verify_key AND lethe.drp_agents.revoked_at IS NULL
				THEN lethe.drp_agents.token_hash END`,
		a.ID, a.Name, a.VerifyKey, a.CallbackURL, a.TrustVerifiedEmail)
	if err != nil {
		return fmt.Errorf("register DRP agent: %w", err)
	}
	return nil
}

const drpAgentColumns = `id, name, verify_key, callback_url, trust_verified_email, token_hash IS NOT NULL, token_issued_at, created_at, revoked_at`

func scanDRPAgent(row pgx.Row) (DRPAgent, error) {
	var a DRPAgent
	err := row.Scan(&a.ID, &a.Name, &a.VerifyKey, &a.CallbackURL, &a.TrustVerifiedEmail, &a.HasToken, &a.TokenIssuedAt, &a.CreatedAt, &a.RevokedAt)
	return a, err
}

// DRPAgents lists every agent, revoked ones too.
func (s *Store) DRPAgents(ctx context.Context) ([]DRPAgent, error) {
	rows, err := s.db.Query(ctx, `SELECT `+drpAgentColumns+` FROM lethe.drp_agents ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list DRP agents: %w", err)
	}
	defer rows.Close()
	var out []DRPAgent
	for rows.Next() {
		a, err := scanDRPAgent(rows)
		if err != nil {
			return nil, fmt.Errorf("list DRP agents: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// DRPAgent is the registered, not revoked, agent id; ErrNoAgent otherwise.
func (s *Store) DRPAgent(ctx context.Context, id string) (DRPAgent, error) {
	a, err := scanDRPAgent(s.db.QueryRow(ctx, `SELECT `+drpAgentColumns+` FROM lethe.drp_agents WHERE id = $1 AND revoked_at IS NULL`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fmt.Errorf("DRP agent: %w", ErrNoAgent)
	}
	if err != nil {
		return a, fmt.Errorf("DRP agent: %w", err)
	}
	return a, nil
}

// DRPAgentByToken is the agent whose bearer token hashes to hash.
func (s *Store) DRPAgentByToken(ctx context.Context, hash []byte) (DRPAgent, error) {
	a, err := scanDRPAgent(s.db.QueryRow(ctx, `SELECT `+drpAgentColumns+` FROM lethe.drp_agents WHERE token_hash = $1 AND revoked_at IS NULL`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fmt.Errorf("DRP agent by token: %w", ErrNoAgent)
	}
	if err != nil {
		return a, fmt.Errorf("DRP agent by token: %w", err)
	}
	return a, nil
}

// SetDRPToken keeps the hash of the agent's new bearer token, voiding the old one.
func (s *Store) SetDRPToken(ctx context.Context, agentID string, hash []byte) error {
	tag, err := s.db.Exec(ctx, `UPDATE lethe.drp_agents SET token_hash = $2, token_issued_at = now() WHERE id = $1 AND revoked_at IS NULL`, agentID, hash)
	if err != nil {
		return fmt.Errorf("set DRP token: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set DRP token: %w", ErrNoAgent)
	}
	return nil
}

// RevokeDRPAgent stops an agent: its token and key are refused from now on.
func (s *Store) RevokeDRPAgent(ctx context.Context, id string) error {
	tag, err := s.db.Exec(ctx, `UPDATE lethe.drp_agents SET revoked_at = now(), token_hash = NULL WHERE id = $1 AND revoked_at IS NULL`, id)
	if err != nil {
		return fmt.Errorf("revoke DRP agent: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoke DRP agent: %w", ErrNoAgent)
	}
	return nil
}

// SeeDRPMessage records a signed message until it expires; false when it
// was seen already (a replay). Expired records are pruned on the way.
func (s *Store) SeeDRPMessage(ctx context.Context, agentID string, digest []byte, expiresAt time.Time) (bool, error) {
	if _, err := s.db.Exec(ctx, `DELETE FROM lethe.drp_seen WHERE expires_at < now() - interval '1 hour'`); err != nil {
		return false, fmt.Errorf("prune DRP replay record: %w", err)
	}
	tag, err := s.db.Exec(ctx, `INSERT INTO lethe.drp_seen (agent_id, digest, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		agentID, digest, expiresAt)
	if err != nil {
		return false, fmt.Errorf("DRP replay record: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// ForgetDRPMessage drops a signed message from the replay record: Lethe
// could not act on it (a system did not answer), so the agent may send it
// again.
func (s *Store) ForgetDRPMessage(ctx context.Context, agentID string, digest []byte) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM lethe.drp_seen WHERE agent_id = $1 AND digest = $2`, agentID, digest); err != nil {
		return fmt.Errorf("DRP replay record: %w", err)
	}
	return nil
}

// DRPRequest links one of Lethe's requests to the agent that manages it.
type DRPRequest struct {
	RequestID, AgentID, AgentRequestID, Exercise, StatusCallback string
	ReceivedAt                                                   time.Time
	RevokedAt                                                    *time.Time
}

// LinkDRPRequest records that agent manages request, and what it was told
// in the answer (state); a second exercise that joined the same request
// keeps the first link.
func (s *Store) LinkDRPRequest(ctx context.Context, r DRPRequest, state string) error {
	_, err := s.db.Exec(ctx, `INSERT INTO lethe.drp_requests (request_id, agent_id, agent_request_id, exercise, status_callback, notified_state)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, r.RequestID, r.AgentID, r.AgentRequestID, r.Exercise, r.StatusCallback, state)
	if err != nil {
		return fmt.Errorf("link DRP request: %w", err)
	}
	return nil
}

// LinkedDRPRequest is agent's link to request; ErrNotFound when the agent
// does not manage it.
func (s *Store) LinkedDRPRequest(ctx context.Context, requestID, agentID string) (DRPRequest, error) {
	r := DRPRequest{RequestID: requestID, AgentID: agentID}
	err := s.db.QueryRow(ctx, `SELECT agent_request_id, exercise, status_callback, received_at, revoked_at
		FROM lethe.drp_requests WHERE request_id = $1 AND agent_id = $2`, requestID, agentID).
		Scan(&r.AgentRequestID, &r.Exercise, &r.StatusCallback, &r.ReceivedAt, &r.RevokedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("DRP request: %w", ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("DRP request: %w", err)
	}
	return r, nil
}

// DRPAgentCallbacks are the registered callback addresses of the agents
// that manage the request (an empty string for an agent without one); none
// when no agent does.
func (s *Store) DRPAgentCallbacks(ctx context.Context, requestID string) ([]string, error) {
	rows, err := s.db.Query(ctx, `SELECT a.callback_url FROM lethe.drp_requests r JOIN lethe.drp_agents a ON a.id = r.agent_id
		WHERE r.request_id = $1 ORDER BY a.id`, requestID)
	if err != nil {
		return nil, fmt.Errorf("DRP agents of a request: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("DRP agents of a request: %w", err)
	}
	return out, nil
}

// MarkDRPRevoked records that the agent revoked the request.
func (s *Store) MarkDRPRevoked(ctx context.Context, requestID, agentID string) error {
	_, err := s.db.Exec(ctx, `UPDATE lethe.drp_requests SET revoked_at = COALESCE(revoked_at, now()), next_notify_at = now()
		WHERE request_id = $1 AND agent_id = $2`, requestID, agentID)
	if err != nil {
		return fmt.Errorf("revoke DRP request: %w", err)
	}
	return nil
}

// DRPCallbackDue is a linked request whose agent may need telling: its
// record's status and due date, and what the agent was told last.
type DRPCallbackDue struct {
	DRPRequest
	Status        string     // the request record's status
	DueAt         *time.Time // the record's due date
	NotifiedState string
	Attempts      int
}

// DueDRPCallbacks claims up to limit linked requests with a callback to
// check, each for lease (so that two API processes do not both send it).
func (s *Store) DueDRPCallbacks(ctx context.Context, lease time.Duration, limit int) ([]DRPCallbackDue, error) {
	rows, err := s.db.Query(ctx, `
		WITH due AS (
			SELECT request_id, agent_id FROM lethe.drp_requests
			WHERE NOT notified_final AND status_callback <> '' AND next_notify_at <= now()
			ORDER BY next_notify_at LIMIT $2 FOR UPDATE SKIP LOCKED)
		UPDATE lethe.drp_requests d SET next_notify_at = now() + $1::interval
		FROM due, lethe.requests r
		WHERE d.request_id = due.request_id AND d.agent_id = due.agent_id AND r.id = d.request_id
		RETURNING d.request_id, d.agent_id, d.agent_request_id, d.exercise, d.status_callback, d.received_at, d.revoked_at,
			r.status, r.due_at, d.notified_state, d.notify_attempts`, lease.String(), limit)
	if err != nil {
		return nil, fmt.Errorf("due DRP callbacks: %w", err)
	}
	defer rows.Close()
	var out []DRPCallbackDue
	for rows.Next() {
		var c DRPCallbackDue
		if err := rows.Scan(&c.RequestID, &c.AgentID, &c.AgentRequestID, &c.Exercise, &c.StatusCallback, &c.ReceivedAt, &c.RevokedAt,
			&c.Status, &c.DueAt, &c.NotifiedState, &c.Attempts); err != nil {
			return nil, fmt.Errorf("due DRP callbacks: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// DRPCallbackDone records what the agent now knows (state), whether it is
// final (no more callbacks), and when to look again.
func (s *Store) DRPCallbackDone(ctx context.Context, requestID, agentID, state string, final bool, next time.Time) error {
	_, err := s.db.Exec(ctx, `UPDATE lethe.drp_requests SET notified_state = $3, notified_final = $4, notify_attempts = 0, next_notify_at = $5
		WHERE request_id = $1 AND agent_id = $2`, requestID, agentID, state, final, next)
	if err != nil {
		return fmt.Errorf("DRP callback done: %w", err)
	}
	return nil
}

// DRPCallbackFailed counts a failed callback and says when to try again.
func (s *Store) DRPCallbackFailed(ctx context.Context, requestID, agentID string, next time.Time) error {
	_, err := s.db.Exec(ctx, `UPDATE lethe.drp_requests SET notify_attempts = notify_attempts + 1, next_notify_at = $3
		WHERE request_id = $1 AND agent_id = $2`, requestID, agentID, next)
	if err != nil {
		return fmt.Errorf("DRP callback failed: %w", err)
	}
	return nil
}
