package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise it is the module version Go stamped from the VCS (a tag, or a
// pseudo-version of the commit), or "dev".
var version string

// commit may be set with -ldflags "-X main.commit=..." where the build has
// no VCS to stamp (a container build without .git).
var commit string

func init() {
	if version == "" {
		version = readBuildInfo().Version
	}
}

// buildInfo is what `webhookops version` reports.
type buildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	Modified  bool   `json:"modified,omitempty"` // built from a tree with uncommitted changes
	BuildTime string `json:"commit_time,omitempty"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
	CGO       bool   `json:"cgo"`
}

func readBuildInfo() buildInfo {
	out := buildInfo{Version: "dev", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return out
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		out.Version = v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			out.Commit = s.Value
		case "vcs.time":
			out.BuildTime = s.Value
		case "vcs.modified":
			out.Modified = s.Value == "true"
		case "CGO_ENABLED":
			out.CGO = s.Value == "1"
		}
	}
	if commit != "" {
		out.Commit = commit
	}
	return out
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, the commit it was built from and the Go version",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
		Action: func(c *cli.Context) error {
			bi := readBuildInfo()
			bi.Version = version
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(bi)
			}
			w := c.App.Writer
			fmt.Fprintf(w, "webhookops %s\n", bi.Version)
			if bi.Commit != "" {
				dirty := ""
				if bi.Modified {
					dirty = " (with uncommitted changes)"
				}
				fmt.Fprintf(w, "commit     %s%s\n", bi.Commit, dirty)
			}
			if bi.BuildTime != "" {
				fmt.Fprintf(w, "committed  %s\n", bi.BuildTime)
			}
			fmt.Fprintf(w, "go         %s %s, cgo %v\n", bi.GoVersion, bi.Platform, bi.CGO)
			return nil
		},
	}
}
