package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/apikeys"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/drp"
	"github.com/lethe-privacy/lethe/internal/testenv"
)

// drpAgent is an authorized agent as the tests play it: its Ed25519 key,
// its pairwise token, and the status callbacks it received (each one's
// signature checked against Lethe's verify key).
type drpAgent struct {
	id       string
	pub      ed25519.PublicKey
	key      ed25519.PrivateKey
	token    string
	callback *httptest.Server

	mu        sync.Mutex
	callbacks []drp.Status
	badSigned int
	failNext  int // answer this many (well-signed) callbacks 503
	failed    int
}

func newDRPAgent(t *testing.T, id string, lethe ed25519.PublicKey) *drpAgent {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a := &drpAgent{id: id, pub: pub, key: key}
	a.callback = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		defer a.mu.Unlock()
		if !drp.VerifyCallback(lethe, body, r.Header.Get(drp.CallbackSignatureHeader), r.Header.Get(drp.CallbackSignedAtHeader), time.Now(), time.Minute) || r.Header.Get("Content-Type") != "application/json" {
			a.badSigned++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if a.failNext > 0 {
			a.failNext--
			a.failed++
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var st drp.Status
		if err := json.Unmarshal(body, &st); err != nil {
			a.badSigned++
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		a.callbacks = append(a.callbacks, st)
	}))
	t.Cleanup(a.callback.Close)
	return a
}

// callbacksFor are the verified callbacks about request id, in order.
func (a *drpAgent) callbacksFor(id string) []drp.Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []drp.Status
	for _, c := range a.callbacks {
		if c.RequestID == id {
			out = append(out, c)
		}
	}
	return out
}

// sign is a signed message of claims, with the envelope filled in.
func (a *drpAgent) sign(t *testing.T, business string, claims map[string]any) string {
	t.Helper()
	now := time.Now().UTC()
	msg := map[string]any{"agent-id": a.id, "business-id": business, "issued-at": now.Add(-time.Second).Format(time.RFC3339),
		"expires-at": now.Add(5 * time.Minute).Format(time.RFC3339), "drp.version": "1.0"}
	for k, v := range claims {
		msg[k] = v
	}
	b, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	return drp.Sign(a.key, b)
}

// drpCall calls the DRP routes: body is sent as text/plain, token as the bearer.
func drpCall(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "text/plain")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func decodeStatus(t *testing.T, raw []byte) drp.Status {
	t.Helper()
	var st drp.Status
	if err := json.Unmarshal(raw, &st); err != nil || st.RequestID == "" {
		t.Fatalf("not an Exercise Status object: %q", raw)
	}
	return st
}

// wantDRPError checks the answer is DRP's error shape with this code.
func wantDRPError(t *testing.T, what string, code int, raw []byte, status int, fatal bool) {
	t.Helper()
	var e drp.Error
	if code != status || json.Unmarshal(raw, &e) != nil || e.Code != fmt.Sprint(status) || e.Message == "" || e.Fatal != fatal {
		t.Errorf("%s: want %d {code, message, fatal:%v}, got %d %s", what, status, fatal, code, raw)
	}
}

// runDRP runs `starter drp args…` in process.
func runDRP(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := drpCommand()
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestAnAuthorizedAgentExercisesRightsOverTheDataRightsProtocol(t *testing.T) {
	e := newE2E(t, 3, nil)
	ctx := context.Background()
	const business = "LETHE_TEST_CB"

	// Lethe with DRP on: its own signing key, callbacks looked for often.
	seed := make([]byte, ed25519.SeedSize)
	_, _ = rand.Read(seed)
	letheKey := ed25519.NewKeyFromSeed(seed)
	cfg := e.Config
	cfg.RatePerIP, cfg.BurstPerIP = 1000, 1000
	cfg.DRPBusinessID, cfg.DRPSigningKey, cfg.DRPCallbackEvery = business, base64.StdEncoding.EncodeToString(seed), 200*time.Millisecond
	m, err := demo.DataMap()
	if err != nil {
		t.Fatal(err)
	}
	m.Processors = nil
	srv, err := newAPIServer(cfg, e.Temporal, e.Lethe, m, e.Log)
	if err != nil {
		t.Fatal(err)
	}
	srv.APIKeys = apikeys.NewAuthenticator(e.Lethe, 0)
	lethe := httptest.NewServer(srv.Handler())
	t.Cleanup(lethe.Close)
	srv.DRP.PublicURL = lethe.URL
	loop, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { srv.RunDRPCallbacks(loop); close(done) }()
	t.Cleanup(func() { stop(); <-done })

	// The operator registers the agent with its directory key (the CLI, on Lethe's database).
	agent := newDRPAgent(t, "TEST_AGENT", letheKey.Public().(ed25519.PublicKey))
	t.Setenv("LETHE_DATABASE_URL", cfg.DatabaseURL)
	if out, err := runDRP(t, "agent", "add", "--id", agent.id, "--verify-key", drp.EncodeKey(agent.pub), "--callback-url", agent.callback.URL); err != nil {
		t.Fatalf("drp agent add: %v %s", err, out)
	}
	if out, err := runDRP(t, "agent", "add", "--id", "BAD", "--verify-key", "AAAA"); err == nil {
		t.Errorf("a key that is no Ed25519 key was registered: %s", out)
	}

	// Discovery names the business, its actions and the callbacks' verify key.
	code, raw := drpCall(t, "GET", lethe.URL+"/.well-known/data-rights.json", "", "")
	if code != http.StatusOK || !strings.Contains(string(raw), drp.EncodeKey(letheKey.Public().(ed25519.PublicKey))) || !strings.Contains(string(raw), `"sale:opt-out"`) {
		t.Fatalf("discovery: %d %s", code, raw)
	}

	// Pairwise setup: a signed message earns a bearer token; only its hash is kept.
	code, raw = drpCall(t, "POST", lethe.URL+"/v1/agent/"+agent.id, "", agent.sign(t, business, nil))
	var setup drp.SetupAnswer
	if code != http.StatusOK || json.Unmarshal(raw, &setup) != nil || setup.AgentID != agent.id || setup.Token == "" {
		t.Fatalf("setup: %d %s", code, raw)
	}
	agent.token = setup.Token
	if n := e.count(t, "SELECT count(*) FROM lethe.drp_agents WHERE token_hash IS NOT NULL AND position(convert_to($1, 'UTF8') in token_hash) = 0", setup.Token); n != 1 {
		t.Errorf("the token's hash is not kept (or the token is): %d", n)
	}
	if code, raw := drpCall(t, "GET", lethe.URL+"/v1/agent/"+agent.id, agent.token, ""); code != http.StatusOK || strings.TrimSpace(string(raw)) != "{}" {
		t.Errorf("agent information: %d %s", code, raw)
	}
	if code, _ := drpCall(t, "GET", lethe.URL+"/v1/agent/OTHER_AGENT", agent.token, ""); code != http.StatusForbidden {
		t.Errorf("agent information of another agent: %d", code)
	}

	// Refused: an unknown agent, a wrong signature, another business, an expired message, an unsupported right.
	stranger := newDRPAgent(t, "STRANGER", nil)
	if code, raw := drpCall(t, "POST", lethe.URL+"/v1/agent/"+stranger.id, "", stranger.sign(t, business, nil)); code != http.StatusForbidden || len(raw) != 0 {
		t.Errorf("setup of an unknown agent: want 403 with no body, got %d %s", code, raw)
	}
	forged := &drpAgent{id: agent.id, key: stranger.key} // the agent's id, someone else's key
	if code, _ := drpCall(t, "POST", lethe.URL+"/v1/agent/"+agent.id, "", forged.sign(t, business, nil)); code != http.StatusForbidden {
		t.Errorf("setup signed with another key: %d", code)
	}
	target, asker, revoker := demo.Accounts(3)[0], demo.Accounts(3)[1], demo.Accounts(3)[2]
	deletion := func(a *drpAgent, who demo.Account, claims map[string]any) string {
		c := map[string]any{"exercise": "deletion", "regime": "ccpa", "agent-request-id": "agent-req-" + who.ID[:4],
			"status_callback": agent.callback.URL + "/drp/status", "email": who.Email, "email_verified": true, "name": who.Name}
		for k, v := range claims {
			c[k] = v
		}
		return a.sign(t, business, c)
	}
	exercise := lethe.URL + "/v1/data-rights-request"
	code, raw = drpCall(t, "POST", exercise, "drp_not-a-token", deletion(agent, target, nil))
	wantDRPError(t, "an unknown agent's token", code, raw, http.StatusForbidden, false)
	code, raw = drpCall(t, "POST", exercise, agent.token, deletion(forged, target, nil))
	wantDRPError(t, "a wrong signature", code, raw, http.StatusForbidden, false)
	code, raw = drpCall(t, "POST", exercise, agent.token, deletion(agent, target, map[string]any{"business-id": "OTHER_CB"}))
	wantDRPError(t, "another business", code, raw, http.StatusForbidden, false)
	old := time.Now().UTC().Add(-20 * time.Minute)
	code, raw = drpCall(t, "POST", exercise, agent.token, deletion(agent, target, map[string]any{"issued-at": old.Format(time.RFC3339), "expires-at": old.Add(10 * time.Minute).Format(time.RFC3339)}))
	wantDRPError(t, "an expired message", code, raw, http.StatusForbidden, true)
	code, raw = drpCall(t, "POST", exercise, agent.token, deletion(agent, target, map[string]any{"exercise": "access:categories"}))
	wantDRPError(t, "an unsupported right", code, raw, http.StatusBadRequest, true)
	code, raw = drpCall(t, "POST", exercise, agent.token, deletion(agent, target, map[string]any{"status_callback": "http://169.254.169.254/latest"}))
	wantDRPError(t, "a callback elsewhere than the agent's", code, raw, http.StatusBadRequest, true)
	if n := e.count(t, "SELECT count(*) FROM lethe.requests"); n != 0 {
		t.Fatalf("refused messages created %d requests", n)
	}

	// A deletion: the agent's verified claim is not relied on (the operator
	// did not say so), so the person confirms with the mailed code.
	signed := deletion(agent, target, nil)
	code, raw = drpCall(t, "POST", exercise, agent.token, signed)
	if code != http.StatusOK {
		t.Fatalf("deletion: %d %s", code, raw)
	}
	del := decodeStatus(t, raw)
	if del.Status != drp.StatusInProgress || del.Reason != drp.ReasonNeedUserVerification || del.UserVerificationURL == "" ||
		del.ExpectedBy == "" || del.ReceivedAt == "" || del.AgentRequestID != "agent-req-"+target.ID[:4] {
		t.Fatalf("deletion's status: %+v", del)
	}
	if expected, _ := time.Parse(time.RFC3339, del.ExpectedBy); expected.Before(time.Now().AddDate(0, 0, 29)) || expected.After(time.Now().AddDate(0, 0, 46)) {
		t.Errorf("expected_by %s is not the CCPA deadline (or the company's earlier promise)", del.ExpectedBy)
	}
	// The same signed message again is a replay.
	code, raw = drpCall(t, "POST", exercise, agent.token, signed)
	wantDRPError(t, "a replayed message", code, raw, http.StatusConflict, true)

	mails, err := e.SendGrid.WaitFor(target.Email, 2, 15*time.Second) // receipt and code
	if err != nil {
		t.Fatal(err)
	}
	var mailed string
	for _, m := range mails {
		if strings.Contains(strings.ToLower(m.Subject), "code") {
			mailed = codeRe.FindString(m.Text)
		}
	}
	if mailed == "" {
		t.Fatalf("no code mailed: %+v", mails)
	}
	testenv.Eventually(t, 15*time.Second, "the request to wait for the code", func() bool {
		code, raw := drpCall(t, "GET", exercise+"/"+del.RequestID, agent.token, "")
		return code == http.StatusOK && decodeStatus(t, raw).Reason == drp.ReasonNeedUserVerification
	})
	// The person follows user_verification_url (as the agent presents it) and enters the code.
	back := agent.callback.URL + "/done" // at the agent's registered address
	page := del.UserVerificationURL + "?request_id=" + del.RequestID + "&redirect_to=" + url.QueryEscape(back)
	resp, err := http.Get(page)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("verification page: %v %v", err, resp)
	}
	resp.Body.Close()
	// Anywhere else, the page links nowhere: no open redirect on the company's domain.
	resp, err = http.Get(del.UserVerificationURL + "?redirect_to=" + url.QueryEscape("https://evil.example/phish"))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || strings.Contains(string(b), "evil.example") {
		t.Errorf("the verification page links to a foreign address: %d", resp.StatusCode)
	}
	resp.Body.Close()
	wrong := "000000"
	if mailed == wrong {
		wrong = "111111"
	}
	if resp, err := http.PostForm(page, url.Values{"code": {wrong}}); err != nil || resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("a wrong code: %v %v", err, resp)
	}
	// Callbacks send a request's latest state: a deletion done within one
	// look would go from waiting for the code to fulfilled. The person's
	// row is held until the agent has heard that the work is in progress.
	hold, err := e.App.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hold.Rollback(context.Background()) })
	if _, err := hold.Exec(ctx, `SELECT 1 FROM demo.accounts WHERE id = $1 FOR UPDATE`, target.ID); err != nil {
		t.Fatal(err)
	}
	resp, err = http.PostForm(page, url.Values{"code": {mailed}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "confirmed") || !strings.Contains(string(body), back) {
		t.Fatalf("the right code: %d %s", resp.StatusCode, body)
	}
	testenv.Eventually(t, 30*time.Second, "an in-progress callback once verified", func() bool {
		for _, cb := range agent.callbacksFor(del.RequestID) {
			if cb.Status == drp.StatusInProgress && cb.Reason == "" {
				return true
			}
		}
		return false
	})
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	// An access request from the same agent, now relied on for email_verified: no code.
	if out, err := runDRP(t, "agent", "add", "--id", agent.id, "--verify-key", drp.EncodeKey(agent.pub), "--callback-url", agent.callback.URL, "--trust-verified-email"); err != nil {
		t.Fatalf("drp agent add again: %v %s", err, out)
	}
	code, raw = drpCall(t, "POST", exercise, agent.token, agent.sign(t, business, map[string]any{
		"exercise": "access", "email": asker.Email, "email_verified": true, "agent-request-id": "agent-access-1"}))
	if code != http.StatusOK {
		t.Fatalf("access (the token outlives a registration that keeps the key): %d %s", code, raw)
	}
	acc := decodeStatus(t, raw)
	if acc.Status != drp.StatusInProgress || acc.Reason != "" || acc.UserVerificationURL != "" {
		t.Fatalf("access's status: %+v", acc)
	}

	// A sale opt-out needs no verification: it is in progress at once, as a consent withdrawal.
	code, raw = drpCall(t, "POST", exercise, agent.token, agent.sign(t, business, map[string]any{
		"exercise": "sale:opt-out", "regime": "ccpa", "email": revoker.Email}))
	if st := decodeStatus(t, raw); code != http.StatusOK || st.Status != drp.StatusInProgress || st.Reason != "" {
		t.Fatalf("sale:opt-out: %d %s", code, raw)
	} else if n := e.count(t, "SELECT count(*) FROM lethe.requests WHERE id = $1 AND type = 'consent'", st.RequestID); n != 1 {
		t.Errorf("sale:opt-out is no consent request: %d", n)
	}

	// Both are fulfilled, and the agent is told so by signed callbacks.
	for _, id := range []string{del.RequestID, acc.RequestID} {
		testenv.Eventually(t, 60*time.Second, "a fulfilled callback for "+id, func() bool {
			cbs := agent.callbacksFor(id)
			return len(cbs) > 0 && cbs[len(cbs)-1].Status == drp.StatusFulfilled
		})
		code, raw := drpCall(t, "GET", exercise+"/"+id, agent.token, "")
		if st := decodeStatus(t, raw); code != http.StatusOK || st.Status != drp.StatusFulfilled {
			t.Errorf("status of %s: %d %s", id, code, raw)
		}
	}
	cbs := agent.callbacksFor(del.RequestID)
	t.Logf("the deletion's callbacks: %+v", cbs)
	if len(cbs) < 2 || cbs[0].Status != drp.StatusInProgress || cbs[0].Reason != "" || cbs[len(cbs)-1].AgentRequestID != del.AgentRequestID || cbs[len(cbs)-1].ReceivedAt == "" {
		t.Errorf("the deletion's callbacks: want in_progress (verified) then fulfilled, got %+v", cbs)
	}
	for i := 1; i < len(cbs); i++ {
		if cbs[i].Status == cbs[i-1].Status && cbs[i].Reason == cbs[i-1].Reason && cbs[i].ExpectedBy == cbs[i-1].ExpectedBy {
			t.Errorf("callback %d repeats the one before: %+v", i, cbs[i])
		}
	}
	// The erasure really happened: the person's rows are gone, another's stay.
	for _, tbl := range m.Tables {
		if tbl.Action != datamap.ActionDelete || tbl.Key != "account_id" {
			continue
		}
		if n := e.count(t, fmt.Sprintf("SELECT count(*) FROM %s WHERE account_id = $1", tbl.Name), target.ID); n != 0 {
			t.Errorf("%s: %d rows of the erased person left", tbl.Name, n)
		}
		if n := e.count(t, fmt.Sprintf("SELECT count(*) FROM %s WHERE account_id = $1", tbl.Name), asker.ID); n == 0 {
			t.Errorf("%s: another person's rows were erased too", tbl.Name)
		}
	}

	// Revoke: a request still waiting for its code is cancelled, and the agent told.
	code, raw = drpCall(t, "POST", exercise, agent.token, deletion(agent, revoker, map[string]any{"email_verified": false}))
	if code != http.StatusOK {
		t.Fatalf("third request: %d %s", code, raw)
	}
	rev := decodeStatus(t, raw)
	if rev.Reason != drp.ReasonNeedUserVerification {
		t.Fatalf("an unverified claim asks for the code even from a trusted agent: %+v", rev)
	}
	testenv.Eventually(t, 15*time.Second, "the third request to wait for the code", func() bool {
		code, raw := drpCall(t, "GET", exercise+"/"+rev.RequestID, agent.token, "")
		return code == http.StatusOK && decodeStatus(t, raw).Reason == drp.ReasonNeedUserVerification
	})
	// The same right for the same person again (a new message) joins the open request.
	code, raw = drpCall(t, "POST", exercise, agent.token, deletion(agent, revoker, map[string]any{"email_verified": false, "agent-request-id": "again"}))
	if st := decodeStatus(t, raw); code != http.StatusOK || st.RequestID != rev.RequestID {
		t.Fatalf("a duplicate: %d %s (want %s)", code, raw, rev.RequestID)
	}
	// Another agent asking the same for the same person is not handed the
	// open request (its status, its revoke): knowing an address is not enough.
	nosy := newDRPAgent(t, "NOSY_AGENT", nil)
	if out, err := runDRP(t, "agent", "add", "--id", nosy.id, "--verify-key", drp.EncodeKey(nosy.pub), "--callback-url", nosy.callback.URL); err != nil {
		t.Fatalf("drp agent add: %v %s", err, out)
	}
	var nosySetup drp.SetupAnswer
	if code, raw := drpCall(t, "POST", lethe.URL+"/v1/agent/"+nosy.id, "", nosy.sign(t, business, nil)); code != http.StatusOK || json.Unmarshal(raw, &nosySetup) != nil {
		t.Fatalf("setup of a second agent: %d %s", code, raw)
	}
	code, raw = drpCall(t, "POST", exercise, nosySetup.Token, deletion(nosy, revoker, map[string]any{"email_verified": false, "status_callback": nosy.callback.URL + "/drp/status"}))
	wantDRPError(t, "another agent joining the open request", code, raw, http.StatusConflict, true)
	if n := e.count(t, "SELECT count(*) FROM lethe.drp_requests WHERE agent_id = $1", nosy.id); n != 0 {
		t.Errorf("the second agent was linked to %d requests", n)
	}
	// A fulfilled request can no longer be revoked. (The same words revoke
	// the open request below: bound to its request, that is no replay.)
	code, raw = drpCall(t, "DELETE", exercise+"/"+del.RequestID, agent.token, drp.Sign(agent.key, []byte(`{"reason":"changed my mind"}`)))
	wantDRPError(t, "revoking a fulfilled request", code, raw, http.StatusConflict, false)
	// The team extends its deadline: the agent is told the new expected_by, and why.
	if code, body := e.call(t, "POST", "/v1/requests/"+rev.RequestID+"/extend", e.Operator, `{"reason":"records in many systems","by":"10d"}`); code != http.StatusOK {
		t.Fatalf("extend: %d %v", code, body)
	}
	testenv.Eventually(t, 30*time.Second, "a callback with the new expected_by", func() bool {
		cbs := agent.callbacksFor(rev.RequestID)
		return len(cbs) > 0 && cbs[len(cbs)-1].ExpectedBy != rev.ExpectedBy && cbs[len(cbs)-1].ProcessingDetails == "extended: records in many systems"
	})
	code, raw = drpCall(t, "DELETE", exercise+"/"+rev.RequestID, agent.token, drp.Sign(stranger.key, []byte(`{"reason":"changed my mind"}`)))
	wantDRPError(t, "a revoke with a wrong signature", code, raw, http.StatusForbidden, false)
	// The agent is down when the revoked callback first comes: it comes again.
	agent.mu.Lock()
	agent.failNext = 1
	agent.mu.Unlock()
	revokeMsg := drp.Sign(agent.key, []byte(`{"reason":"changed my mind"}`))
	code, raw = drpCall(t, "DELETE", exercise+"/"+rev.RequestID, agent.token, revokeMsg)
	if st := decodeStatus(t, raw); code != http.StatusOK || st.Status != drp.StatusRevoked {
		t.Fatalf("revoke: %d %s", code, raw)
	}
	code, raw = drpCall(t, "DELETE", exercise+"/"+rev.RequestID, agent.token, revokeMsg)
	wantDRPError(t, "a replayed revoke", code, raw, http.StatusConflict, true)
	testenv.Eventually(t, 30*time.Second, "a revoked callback", func() bool {
		cbs := agent.callbacksFor(rev.RequestID)
		return len(cbs) > 0 && cbs[len(cbs)-1].Status == drp.StatusRevoked
	})
	// Another agent's token does not reach these requests.
	other := newDRPAgent(t, "OTHER_AGENT", nil)
	if _, err := runDRP(t, "agent", "add", "--id", other.id, "--verify-key", drp.EncodeKey(other.pub)); err != nil {
		t.Fatal(err)
	}
	_, raw = drpCall(t, "POST", lethe.URL+"/v1/agent/"+other.id, "", other.sign(t, business, nil))
	_ = json.Unmarshal(raw, &setup)
	code, raw = drpCall(t, "GET", exercise+"/"+del.RequestID, setup.Token, "")
	wantDRPError(t, "another agent's request", code, raw, http.StatusForbidden, false)

	agent.mu.Lock()
	if agent.badSigned != 0 {
		t.Errorf("%d callbacks were not signed with Lethe's key", agent.badSigned)
	}
	if agent.failed != 1 {
		t.Errorf("the agent refused %d callbacks, want 1 (sent again, then taken)", agent.failed)
	}
	agent.mu.Unlock()
	// No personal data in logs or callbacks.
	for _, who := range []demo.Account{target, asker, revoker} {
		if strings.Contains(e.LogOutput.String(), who.Email) {
			t.Errorf("logs contain %s's email", who.ID)
		}
		for _, id := range []string{del.RequestID, acc.RequestID, rev.RequestID} {
			assertHistoryClean(t, e.Stack, id, who.Email, who.Name)
		}
	}
	agent.mu.Lock()
	all, _ := json.Marshal(agent.callbacks)
	agent.mu.Unlock()
	if strings.Contains(string(all), "@") {
		t.Errorf("callbacks carry an email: %s", all)
	}
}
