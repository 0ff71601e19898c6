//! The Basecamp demo data (see [`crate::Seed::Demo`]).

use chrono::{Days, Utc};

use super::{
    BasecampState, BasecampStatus, DEMO_ACCOUNT_ID, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET,
    DEMO_SECOND_ACCOUNT_ID,
};

pub(crate) fn demo(s: &mut BasecampState) {
    s.common.oauth.register(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET);
    s.insert_account(DEMO_SECOND_ACCOUNT_ID, "Nordlys Labs", "bc3");
    s.insert_account(2_011_001, "Nordlys (Basecamp 2)", "bcx");
    s.insert_account(3_300_001, "Nordlys HEY", "hey");

    let a = DEMO_ACCOUNT_ID;
    let ingrid = s.insert_person(a, "Ingrid Solberg", "ingrid@nordlys.example", false);
    let jonas = s.insert_person(a, "Jonas Berg", "jonas.berg@nordlys.example", false);
    let per = s.insert_person(a, "Per Hansen", " Per.Hansen@Nordlys.example ", false);
    let mia = s.insert_person(a, "Mia Kunde", "mia@customer.example", true);

    // Active, timesheets on, a client on the project, lists with a group, completed and
    // trashed to-dos, one project-level entry (so its timesheet recording is discoverable).
    let web = s.insert_project(a, "Nordlys website relaunch");
    s.projects.get_mut(&web).unwrap().people = vec![ingrid, jonas, mia];
    let launch = s.insert_list(web, None, "Launch checklist");
    let draft = s.insert_todo(launch, "Draft onboarding email sequence");
    s.todos.get_mut(&draft).unwrap().assignees = vec![jonas];
    s.insert_todo(launch, "Collect brand assets from client");
    let staging = s.insert_todo(launch, "Set up staging");
    s.todos.get_mut(&staging).unwrap().completed = true;
    let old = s.insert_todo(launch, "Old idea");
    s.todos.get_mut(&old).unwrap().status = BasecampStatus::Trashed;
    let content = s.insert_list(web, None, "Content");
    s.insert_todo(content, "Review copy");
    let blog = s.insert_list(web, Some(content), "Blog posts");
    s.insert_todo(blog, "Write launch post");
    let timesheet = s.projects[&web].timesheet_id;
    let id = s.next_id();
    let now = Utc::now();
    s.entries.insert(
        id,
        super::Entry {
            id,
            project: web,
            recording: timesheet,
            person: ingrid,
            creator: ingrid,
            date: now.date_naive() - Days::new(1),
            seconds: 2700,
            description: "Kick-off call".into(),
            created_at: now,
            updated_at: now,
        },
    );

    // Active, timesheets off.
    let tools = s.insert_project(a, "Internal tools");
    s.projects.get_mut(&tools).unwrap().people = vec![ingrid, per];
    s.projects.get_mut(&tools).unwrap().timesheet_enabled = false;
    let backlog = s.insert_list(tools, None, "Backlog");
    s.insert_todo(backlog, "Upgrade CI");

    let archived = s.insert_project(a, "Autumn campaign 2025");
    s.projects.get_mut(&archived).unwrap().status = BasecampStatus::Archived;
    let trashed = s.insert_project(a, "Scratch project");
    s.projects.get_mut(&trashed).unwrap().status = BasecampStatus::Trashed;

    let b = DEMO_SECOND_ACCOUNT_ID;
    s.insert_person(b, "Ingrid Solberg", "ingrid@nordlys.example", false);
    let lab = s.insert_project(b, "Lab experiments");
    let ideas = s.insert_list(lab, None, "Ideas");
    s.insert_todo(ideas, "Try the new API");
}
