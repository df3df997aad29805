package main

import (
	"fmt"
	"os"

	"github.com/txfs/txfs/service"
)

// notify tells systemd (a unit of Type=notify, which sets $NOTIFY_SOCKET)
// the state of the mount. It only warns when that fails: the mount is
// served either way.
func notify(state string) {
	if _, err := service.Notify(state); err != nil {
		fmt.Fprintf(os.Stderr, "txfs: warning: %v\n", err)
	}
}

// notifyReady says that dir is usable: systemd starts the units that
// wait for this one.
func notifyReady(image, dir string) {
	notify(fmt.Sprintf("READY=1\nSTATUS=serving %s on %s", image, dir))
}

// notifyStopping says that dir is unmounted and the volume is being
// closed (its checkpoint written).
func notifyStopping(dir string) {
	notify(fmt.Sprintf("STOPPING=1\nSTATUS=%s unmounted; writing the checkpoint", dir))
}
