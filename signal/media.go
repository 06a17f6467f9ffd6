package signal

import "github.com/switchboard-sfu/switchboard/sfu"

// The sfu.Events of simulcast and bandwidth management.

type streamStateMsg struct {
	Type   string `json:"type"`
	Track  string `json:"trackId"`
	Paused bool   `json:"paused"`
	Layer  string `json:"layer"`
}

type publishLayersMsg struct {
	Type   string   `json:"type"`
	Track  string   `json:"trackId"`
	Mid    string   `json:"mid"`
	Active []string `json:"active"`
}

func (m *member) OnTrackUpdated(t sfu.TrackInfo) {
	m.send(trackMsg{Type: TypeTrackUpdated, Track: track(t)})
}

func (m *member) OnStreamState(trackID string, paused bool, layer string) {
	m.send(streamStateMsg{Type: TypeStreamState, Track: trackID, Paused: paused, Layer: layer})
}

func (m *member) OnPublishLayers(trackID, mid string, active []string) {
	if active == nil {
		active = []string{}
	}
	m.send(publishLayersMsg{Type: TypePublishLayers, Track: trackID, Mid: mid, Active: active})
}
