package bench

const fakeServeEnv = "WEBHOOKOPS_BENCH_FAKE_SERVE"

func fakeServeMain(args []string) int { return 2 }
