package temporalclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// Deployment is what an operator needs to roll workers out: the current
// version, and each version with whether it still runs workflows.
type Deployment struct {
	Name     string
	Current  string // build id; "" when unversioned workers get new work
	Versions []DeploymentVersion
}

// DeploymentVersion is one build of a worker deployment.
type DeploymentVersion struct {
	BuildID  string
	Created  time.Time
	Drainage string // "", "draining" or "drained": whether workflows still need it
}

// DescribeDeployment reads the worker deployment name.
func DescribeDeployment(ctx context.Context, c client.Client, name string) (Deployment, error) {
	d, err := c.WorkerDeploymentClient().GetHandle(name).Describe(ctx, client.WorkerDeploymentDescribeOptions{})
	if err != nil {
		return Deployment{}, fmt.Errorf("describe worker deployment %s: %w", name, err)
	}
	out := Deployment{Name: name}
	if cur := d.Info.RoutingConfig.CurrentVersion; cur != nil {
		out.Current = cur.BuildID
	}
	for _, v := range d.Info.VersionSummaries {
		dv := DeploymentVersion{BuildID: v.Version.BuildID, Created: v.CreateTime}
		switch v.DrainageStatus {
		case client.WorkerDeploymentVersionDrainageStatusDraining:
			dv.Drainage = "draining"
		case client.WorkerDeploymentVersionDrainageStatusDrained:
			dv.Drainage = "drained"
		}
		out.Versions = append(out.Versions, dv)
	}
	return out, nil
}

// Promote makes buildID the current version of the deployment: new
// workflows, and every running one at its next step, run on it. The
// version's workers must be polling already.
func Promote(ctx context.Context, c client.Client, deployment, buildID string) error {
	_, err := c.WorkerDeploymentClient().GetHandle(deployment).SetCurrentVersion(ctx, client.WorkerDeploymentSetCurrentVersionOptions{BuildID: buildID})
	if err != nil {
		return fmt.Errorf("make %s the current version of %s: %w", buildID, deployment, err)
	}
	return nil
}

// PromoteFirstVersion makes buildID current when the deployment has no
// current version yet (its first rollout), waiting up to a minute for the
// server to see the version's pollers. It reports whether it did.
func PromoteFirstVersion(ctx context.Context, c client.Client, deployment, buildID string) (bool, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		d, err := DescribeDeployment(ctx, c, deployment)
		var notFound *serviceerror.NotFound
		switch {
		case err == nil && d.Current != "":
			return false, nil
		case err == nil || errors.As(err, &notFound):
			if err = Promote(ctx, c, deployment, buildID); err == nil {
				return true, nil
			}
		}
		if time.Now().After(deadline) {
			return false, err
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
