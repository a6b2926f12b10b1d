package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/shareprefill/shareprefill/runtime"
)

func runDevices(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("devices", stderr)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parse(fs, args); err != nil {
		return err
	}
	infos, err := runtime.ListDevices()
	if err != nil {
		return err
	}
	def, _ := runtime.ChooseDevice(infos, "")
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(infos)
	}
	for i := range infos {
		writeDevice(stdout, &infos[i], i == def)
	}
	fmt.Fprintf(stdout, "Choose with --device INDEX|NAME or SHAREPREFILL_DEVICE; the default is marked *.\n")
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func writeDevice(w io.Writer, d *runtime.DeviceInfo, def bool) {
	mark := " "
	if def {
		mark = "*"
	}
	fmt.Fprintf(w, "%s[%d] %s\n", mark, d.Index, d.Name)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "    %s\t%s\n", k, v) }
	row("vendor / type", fmt.Sprintf("%s (0x%04x:0x%04x) / %s", d.Vendor, d.VendorID, d.DeviceID, d.Type))
	row("Vulkan API", d.APIVersion)
	drv := d.DriverVersion
	if d.DriverName != "" {
		drv = d.DriverName + " " + drv
	}
	if d.DriverInfo != "" {
		drv += " (" + d.DriverInfo + ")"
	}
	row("driver", drv)
	var heaps []string
	for _, h := range d.Heaps {
		kind := "host"
		if h.DeviceLocal {
			kind = "device-local"
		}
		heaps = append(heaps, fmt.Sprintf("%s %s", fmtGiB(h.Size), kind))
	}
	row("memory heaps", strings.Join(heaps, ", "))
	sg := fmt.Sprintf("%d", d.SubgroupSize)
	if d.SubgroupSizeControl {
		sg += fmt.Sprintf(" (size control %d..%d)", d.MinSubgroupSize, d.MaxSubgroupSize)
	} else {
		sg += " (no size control)"
	}
	row("subgroup size", sg)
	row("shared memory", fmt.Sprintf("%d KiB", d.MaxSharedMemory/1024))
	row("maxStorageBufferRange", fmtGiB(d.MaxStorageBufferRange))
	row("maxMemoryAllocationSize", fmtGiB(d.MaxMemoryAllocationSize))
	row("16-bit storage / fp16 math", yesNo(d.Storage16Bit)+" / "+yesNo(d.Float16))
	cm := yesNo(d.CoopMat)
	if len(d.CoopMatShapes) > 0 {
		var shapes []string
		for _, s := range d.CoopMatShapes {
			if s.Scope == "subgroup" {
				shapes = append(shapes, s.String())
			}
		}
		cm += ": " + strings.Join(shapes, ", ")
	}
	row("KHR cooperative matrix", cm)
	cm2 := yesNo(d.CoopMat2)
	if len(d.CoopMat2Flex) > 0 {
		var flex []string
		for _, f := range d.CoopMat2Flex {
			if f.Scope == "workgroup" {
				flex = append(flex, fmt.Sprintf("%s/%d", f.String(), f.Invocations))
			}
		}
		if len(flex) > 0 {
			cm2 += ": workgroup granularity MxNxK/invocations " + strings.Join(flex, ", ")
		}
	}
	row("NV cooperative matrix 2", cm2)
	ts := "none"
	if d.TimestampValidBits > 0 {
		ts = fmt.Sprintf("%d bits, %.3g ns/tick", d.TimestampValidBits, d.TimestampPeriod)
	}
	row("timestamps", ts)
	tw.Flush()
}

func fmtGiB(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%d B", b)
}
