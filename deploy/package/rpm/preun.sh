# dns64d %preun ($1: 0 on removal): stop and disable both units before their files go.
if [ "$1" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
    if [ -d /run/systemd/system ]; then
        systemctl --no-reload disable --now dns64d.service dns64d-shim.service >/dev/null 2>&1 || :
    else
        systemctl --no-reload disable dns64d.service dns64d-shim.service >/dev/null 2>&1 || :
    fi
fi
