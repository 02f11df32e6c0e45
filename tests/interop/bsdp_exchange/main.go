// bsdp_exchange runs one complete BSDP exchange with insomniacslk/dhcp's BSDP
// client (INFORM[LIST], ACK, INFORM[SELECT] of the first image, ACK) on the
// interface named by its argument, and prints what it understood as JSON.
// The tests build it from Debian's golang-github-insomniacslk-dhcp-dev to check
// that a BSDP client written by others accepts netboot's replies.
package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/bsdp"
)

type image struct {
	ID   uint32 `json:"id"`
	Name string `json:"name"`
}

type result struct {
	Images     []image `json:"images"`
	ListServer string  `json:"list_server"`
	SelectType string  `json:"select_type"`
	Selected   uint32  `json:"selected_image_id"`
	BootFile   string  `json:"boot_file"`
	ServerIP   string  `json:"siaddr"`
	RootPath   string  `json:"root_path"`
	Error      string  `json:"error"`
}

func main() {
	out := result{Images: []image{}}
	client := bsdp.NewClient()
	// The zero value means "no time at all" in this version of client4.
	client.ReadTimeout = 5 * time.Second
	client.WriteTimeout = 5 * time.Second
	conversation, err := client.Exchange(os.Args[1])
	if err != nil {
		out.Error = err.Error()
	}
	if len(conversation) >= 2 {
		ack := conversation[1]
		out.ListServer = ack.ServerIdentifier().String()
		images, perr := bsdp.ParseBootImageListFromAck(&ack.DHCPv4)
		if perr != nil && out.Error == "" {
			out.Error = perr.Error()
		}
		for _, bootImage := range images {
			out.Images = append(out.Images, image{ID: binary.BigEndian.Uint32(bootImage.ID.ToBytes()), Name: bootImage.Name})
		}
	}
	if len(conversation) >= 4 {
		ack := conversation[3]
		out.SelectType = bsdp.MessageTypeFromPacket(&ack.DHCPv4).String()
		if options := bsdp.GetVendorOptions(ack.Options); options != nil {
			if id := options.SelectedBootImageID(); id != nil {
				out.Selected = binary.BigEndian.Uint32(id.ToBytes())
			}
		}
		out.BootFile = ack.BootFileName
		out.ServerIP = ack.ServerIPAddr.String()
		out.RootPath = ack.RootPath()
	}
	encoded, _ := json.Marshal(out)
	fmt.Println(string(encoded))
	if out.Error != "" {
		os.Exit(1)
	}
	_ = dhcpv4.ClientPort
}
