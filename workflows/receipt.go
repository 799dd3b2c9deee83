package workflows

import (
	"fmt"
	"strings"

	"github.com/lethe-privacy/lethe/workflows/contract"
)

// processorReceiptEntry is a processor's result as a receipt entry.
func processorReceiptEntry(res contract.ProcessorErasureResult) contract.ReceiptEntry {
	e := contract.ReceiptEntry{System: contract.SystemProcessor, Name: res.Processor, Action: res.Status, Until: res.FollowUpAt}
	var conf []string
	if res.HTTPStatus != 0 {
		conf = append(conf, fmt.Sprintf("HTTP %d", res.HTTPStatus))
	}
	if res.JobID != "" {
		conf = append(conf, "job "+res.JobID)
	}
	for _, ref := range res.Refs {
		conf = append(conf, ref.Kind+" "+ref.ID)
	}
	switch res.Status {
	case contract.ProcessorSkipped:
		e.Basis = res.Reason
	case contract.ProcessorDoneByHand:
		conf = append(conf, res.Evidence)
	}
	e.Confirmation = strings.Join(conf, ", ")
	return e
}
