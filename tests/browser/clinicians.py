"""A verified clinician account and the login form, shared by the browser tests that start from the dashboard."""


def verified_clinician(django_user_model, *, email: str, password: str, first_name: str):
    from allauth.account.models import EmailAddress

    user = django_user_model.objects.create_user(email=email, password=password, first_name=first_name)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def log_in(page, *, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.locator("main").get_by_role("button", name="Log in").click()
    page.wait_for_url("**/dashboard")
