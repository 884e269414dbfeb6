# dns64d %postun ($1: 0 on removal): forget the units and remove the system user dns64d,
# which owns no file (the services run with DynamicUser=yes and write nothing).
if [ "$1" -eq 0 ]; then
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || :
    fi
    if getent passwd dns64d >/dev/null; then
        userdel dns64d >/dev/null 2>&1 || :
    fi
    if getent group dns64d >/dev/null; then
        groupdel dns64d >/dev/null 2>&1 || :
    fi
fi
