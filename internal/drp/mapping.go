package drp

import (
	"github.com/lethe-privacy/lethe/internal/domain"
)

// Action is what a DRP right becomes in Lethe: a request type, and for a
// consent request whether consent is given.
type Action struct {
	Type    string
	Consent bool // the consent change: false withdraws (an opt-out)
}

// ActionFor maps a right onto Lethe's request types: deletion is an
// erasure, access an access request, sale:opt-out a consent request that
// withdraws the sale-and-sharing purpose. The other rights of section 3.01
// (sale:opt-in, access:categories, access:specific) are refused with 400.
func ActionFor(right string) (Action, error) {
	switch right {
	case RightDeletion:
		return Action{Type: domain.TypeErasure}, nil
	case RightAccess:
		return Action{Type: domain.TypeAccess}, nil
	case RightSaleOptOut:
		return Action{Type: domain.TypeConsent, Consent: false}, nil
	case "":
		return Action{}, refuse(400, true, "exercise: required; this covered business supports %s", SupportedList)
	}
	return Action{}, refuse(400, true, "Unsupported rights actions submitted: this covered business supports %s", SupportedList)
}

// Supported are the rights Lethe takes.
func Supported() []string { return []string{RightAccess, RightDeletion, RightSaleOptOut} }

// SupportedList names them for an error message.
const SupportedList = "access, deletion and sale:opt-out"

// JurisdictionFor maps a regime onto Lethe's jurisdictions: ccpa is CCPA;
// no regime is a voluntary request under the company's own policy.
func JurisdictionFor(regime string) (string, error) {
	switch regime {
	case RegimeCCPA:
		return domain.CCPA, nil
	case "", "voluntary":
		return domain.Company, nil
	}
	return "", refuse(400, true, "regime: this covered business takes ccpa, or no regime (voluntary)")
}

// StatusFor maps a Lethe status onto DRP's status and reason (section
// 3.02). A request Lethe has received is in_progress at once, as Lethe
// is the covered business's own endpoint; one waiting for the person's
// code is in_progress/need_user_verification; a request left unverified
// until it lapsed is denied/insuf_verification; a cancelled one is
// revoked when the agent revoked it, else denied/other.
func StatusFor(status string, revoked bool) (drpStatus, reason string) {
	switch status {
	case domain.StatusReceived, domain.StatusVerified, domain.StatusAwaitingApproval,
		domain.StatusInProgress, domain.StatusNeedsAttention:
		return StatusInProgress, ""
	case domain.StatusAwaitingVerification:
		return StatusInProgress, ReasonNeedUserVerification
	case domain.StatusCompleted:
		return StatusFulfilled, ""
	case domain.StatusExpired:
		return StatusDenied, ReasonInsufVerification
	case domain.StatusCancelled:
		if revoked {
			return StatusRevoked, ""
		}
		return StatusDenied, ReasonOther
	case domain.StatusDenied, domain.StatusFailed, domain.StatusAbandoned:
		return StatusDenied, ReasonOther
	}
	return StatusInProgress, ""
}
