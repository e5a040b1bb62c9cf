; Inno Setup script of the Windows installer (Inno Setup 6). Build the bundle on Windows
; first (see the README, "Install" → Windows), then from the repository root:
;   iscc /DAppVersion=0.1.0 packaging\windows\promptbank.iss
; It writes dist\promptbank-<version>-windows-x64-setup.exe. The bundle carries CPU torch
; (about 600 MB compressed), so the installer stays one file below Inno's 2 GB limit and
; needs no disk spanning; the GPU engine is installed later from the app.
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif

[Setup]
AppId={{6B1F3C2E-5B7A-4E43-9B0D-2F6C8E1A9D41}
AppName=Promptbank
AppVersion={#AppVersion}
AppPublisher=Promptbank
DefaultDirName={autopf}\Promptbank
DefaultGroupName=Promptbank
DisableProgramGroupPage=yes
; Installs for the current user without administrator rights unless the user chooses all users.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=promptbank-{#AppVersion}-windows-x64-setup
SetupIconFile=..\..\resources\icons\promptbank.ico
UninstallDisplayIcon={app}\promptbank.exe
Compression=lzma2
SolidCompression=yes
WizardStyle=modern

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "..\..\dist\promptbank\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\Promptbank"; Filename: "{app}\promptbank.exe"; Parameters: "gui --examples"
Name: "{autodesktop}\Promptbank"; Filename: "{app}\promptbank.exe"; Parameters: "gui --examples"; Tasks: desktopicon

[Run]
Filename: "{app}\promptbank.exe"; Parameters: "gui --examples"; Description: "{cm:LaunchProgram,Promptbank}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; The library and the GPU engine live in the user's data folder and are kept.
Type: filesandordirs; Name: "{app}\_internal"
