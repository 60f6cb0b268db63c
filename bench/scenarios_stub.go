package bench

import "context"

func (r *runner) recovery(ctx context.Context) (ScenarioResult, error) { return ScenarioResult{}, nil }
func (r *runner) destinations(ctx context.Context) (ScenarioResult, error) {
	return ScenarioResult{}, nil
}
func (r *runner) tunnelHTTP(ctx context.Context) (ScenarioResult, error) {
	return ScenarioResult{}, nil
}
func (r *runner) tunnelTCP(ctx context.Context) (ScenarioResult, error) { return ScenarioResult{}, nil }
