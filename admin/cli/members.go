package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/webhookops/webhookops/admin/api"
)

// memberState is one member's word for an agent's session or a forward's
// listener in a list's cell: "up", "down", or why not, with "?" added when
// the answering member cannot reach it (its last report may be stale).
func memberState(ok bool, why string, reachable bool) string {
	s := "down"
	if ok {
		s = "up"
	} else if why != "" {
		s = "no"
	}
	if !reachable {
		s += "?"
	}
	return s
}

// agentMembersCell is an agent's sessions in a list: "1:up 2:up 3:down?".
func agentMembersCell(ms []api.MemberSession) string {
	var parts []string
	for _, m := range ms {
		parts = append(parts, fmt.Sprintf("%d:%s", m.Node, memberState(m.Online, "", m.Reachable)))
	}
	return orDash(strings.Join(parts, " "))
}

// forwardMembersCell is a forward's listeners in a list: "1:up 2:no 3:up",
// up where the member listens and has the agent in session.
func forwardMembersCell(ms []api.MemberListener) string {
	var parts []string
	for _, m := range ms {
		parts = append(parts, fmt.Sprintf("%d:%s", m.Node, memberState(m.Listening && m.AgentOnline, m.Error, m.Reachable)))
	}
	return orDash(strings.Join(parts, " "))
}

// agentMembersTable shows an agent's session on each member.
func agentMembersTable(w io.Writer, ms []api.MemberSession) error {
	var rows [][]string
	for _, m := range ms {
		rows = append(rows, []string{strconv.FormatUint(m.Node, 10), m.Tunnel, strconv.FormatBool(m.Online), orDash(m.Transport),
			orDash(m.Remote), fmtTime(m.Since), fmtTime(m.ReportedAt), strconv.FormatBool(m.Reachable)})
	}
	return membersTable(w, []string{"NODE", "TUNNEL", "ONLINE", "TRANSPORT", "REMOTE", "SINCE", "REPORTED", "REACHABLE"}, rows)
}

// forwardMembersTable shows a forward on each member.
func forwardMembersTable(w io.Writer, ms []api.MemberListener) error {
	var rows [][]string
	for _, m := range ms {
		rows = append(rows, []string{strconv.FormatUint(m.Node, 10), strconv.FormatBool(m.Listening), orDash(m.Error),
			strconv.FormatBool(m.AgentOnline), fmtTime(m.ReportedAt), strconv.FormatBool(m.Reachable)})
	}
	return membersTable(w, []string{"NODE", "LISTENING", "ERROR", "AGENT_ONLINE", "REPORTED", "REACHABLE"}, rows)
}

// membersTable is a get's table of members, after a blank line; nothing
// on a single node (no rows).
func membersTable(w io.Writer, head []string, rows [][]string) error {
	if len(rows) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	return table(w, head, rows)
}

// membersColumn drops a list's last column, MEMBERS, on a single node
// (clustered false: no item has members).
func membersColumn(clustered bool, head []string, rows [][]string) ([]string, [][]string) {
	if !clustered {
		head = head[:len(head)-1]
		for i := range rows {
			rows[i] = rows[i][:len(rows[i])-1]
		}
	}
	return head, rows
}
